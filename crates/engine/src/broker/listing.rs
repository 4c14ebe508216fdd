//! Listing resources by name a page at a time: the names after a cursor that start with a
//! prefix, so that 100,000 queues are never built into one answer and a client walks them in
//! name order with `after = next`.

use std::{collections::BTreeMap, ops::Bound};

/// Which page of a listing: names starting with `prefix`, after `after` (exclusive), at most
/// `limit` of them.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    pub prefix: &'a str,
    pub after: Option<&'a str>,
    pub limit: usize,
}

/// One page; `next` is the cursor of the following page (the last name here) when more match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

/// The page of `map` that `request` asks for (at least one item), among the names `visible`
/// admits. Names are visited in order from the cursor (or the prefix) and the walk stops at
/// the first name past the prefix, so a page costs its own length plus the hidden names on
/// the way.
pub(crate) fn page_of<V: Clone>(
    map: &BTreeMap<String, V>,
    request: PageRequest<'_>,
    visible: impl Fn(&str) -> bool,
) -> Page<V> {
    let prefix = request.prefix;
    let limit = request.limit.max(1);
    let start = match request.after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    };
    let mut names = Vec::new();
    let mut items = Vec::new();
    let mut more = false;
    for (name, value) in map.range::<str, _>((start, Bound::Unbounded)) {
        if !name.starts_with(prefix) {
            break;
        }
        if !visible(name) {
            continue;
        }
        if items.len() == limit {
            more = true;
            break;
        }
        names.push(name);
        items.push(value.clone());
    }
    let next = more
        .then(|| names.last().map(|name| name.to_string()))
        .flatten();
    Page { items, next }
}

/// The page of the metadata entries under `key_prefix` that `request` asks for, by the name
/// after `key_prefix`, with the cursor rules of [`page_of`]. Reads the page (and one entry
/// more, to know whether another page follows), not every entry under the prefix.
pub(crate) fn meta_page(
    store: &dyn wharf_storage::Storage,
    key_prefix: &str,
    request: PageRequest<'_>,
) -> Page<(String, serde_json::Value)> {
    let limit = request.limit.max(1);
    let prefix = format!("{key_prefix}{}", request.prefix);
    let after = (request.after)
        .filter(|after| *after >= request.prefix)
        .map(|after| format!("{key_prefix}{after}"));
    let mut entries = store.meta_range(&prefix, after.as_deref(), limit.saturating_add(1));
    let more = entries.len() > limit;
    entries.truncate(limit);
    let items: Vec<(String, serde_json::Value)> = (entries.into_iter())
        .map(|(key, value)| (key[key_prefix.len()..].to_string(), value))
        .collect();
    let next = more
        .then(|| items.last().map(|(name, _)| name.clone()))
        .flatten();
    Page { items, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use wharf_storage::{MetaOp, Storage};

    fn map(names: &[&str]) -> BTreeMap<String, String> {
        names
            .iter()
            .map(|name| (name.to_string(), name.to_string()))
            .collect()
    }

    fn request<'a>(prefix: &'a str, after: Option<&'a str>, limit: usize) -> PageRequest<'a> {
        PageRequest {
            prefix,
            after,
            limit,
        }
    }

    #[test]
    fn a_page_holds_the_prefixed_names_after_the_cursor() {
        let names = map(&["a", "orders", "orders.eu", "orders.us", "ordersx", "z"]);
        let all = |_: &str| true;
        let first = page_of(&names, request("orders.", None, 1), all);
        assert_eq!(first.items, ["orders.eu"]);
        assert_eq!(first.next.as_deref(), Some("orders.eu"));
        let second = page_of(&names, request("orders.", first.next.as_deref(), 1), all);
        assert_eq!(
            (second.items, second.next),
            (vec!["orders.us".to_string()], None)
        );
        let hidden = page_of(&names, request("", None, 10), |name| name != "z");
        assert_eq!(hidden.items.len(), 5);
        assert_eq!(
            page_of(&names, request("", Some("zz"), 3), all).items,
            Vec::<String>::new()
        );
    }

    proptest! {
        /// Walking every page from the start with `after = next` yields exactly the visible
        /// names with the prefix, in order, each once.
        #[test]
        fn walking_the_pages_lists_every_match_once(
            names in proptest::collection::btree_set("[ab]{0,4}", 0..40),
            prefix in "[ab]{0,2}",
            limit in 1usize..6,
            hidden in "[ab]{1,3}",
        ) {
            let map: BTreeMap<String, String> =
                names.iter().map(|name| (name.clone(), name.clone())).collect();
            let visible = |name: &str| !name.ends_with(hidden.as_str());
            let expected: Vec<String> = names
                .iter()
                .filter(|name| name.starts_with(prefix.as_str()) && visible(name))
                .cloned()
                .collect();
            let mut walked = Vec::new();
            let mut after: Option<String> = None;
            for _ in 0..=names.len() {
                let page = page_of(&map, request(&prefix, after.as_deref(), limit), visible);
                prop_assert!(page.items.len() <= limit);
                walked.extend(page.items);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            prop_assert_eq!(walked, expected);
        }

        /// A page of metadata entries is the page of their names under the key prefix: keys
        /// beside the prefix (shorter, longer, sorting before or after it) never show.
        #[test]
        fn a_metadata_page_is_the_page_of_the_names_under_the_key_prefix(
            names in proptest::collection::btree_set("[ab]{0,4}", 0..30),
            prefix in "[ab]{0,2}",
            after in proptest::option::of("[ab]{0,4}"),
            limit in 0usize..6,
        ) {
            let store = wharf_storage::MemoryStore::new();
            let mut ops: Vec<MetaOp> = (names.iter())
                .map(|name| MetaOp::Put(format!("p/{name}"), serde_json::json!(name)))
                .collect();
            for beside in ["p", "o/a", "p0/a", "q/", "pa/b"] {
                ops.push(MetaOp::Put(beside.to_string(), serde_json::json!(beside)));
            }
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(store.meta_apply(ops)).unwrap();
            let map: BTreeMap<String, serde_json::Value> = (names.iter())
                .map(|name| (name.clone(), serde_json::json!(name)))
                .collect();
            let request = request(&prefix, after.as_deref(), limit);
            let page = meta_page(&store, "p/", request);
            let expected = page_of(&map, request, |_| true);
            let values: Vec<serde_json::Value> =
                page.items.iter().map(|(_, value)| value.clone()).collect();
            prop_assert!(page.items.iter().all(|(name, value)| value == &serde_json::json!(name)));
            prop_assert_eq!(values, expected.items);
            prop_assert_eq!(page.next, expected.next);
        }
    }
}
