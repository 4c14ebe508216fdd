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
/// after `key_prefix` (see [`page_of`]).
pub(crate) fn meta_page(
    store: &dyn wharf_storage::Storage,
    key_prefix: &str,
    request: PageRequest<'_>,
) -> Page<(String, serde_json::Value)> {
    let entries = store.meta_list(&format!("{key_prefix}{}", request.prefix));
    let named: BTreeMap<String, (String, serde_json::Value)> = (entries.into_iter())
        .map(|(key, value)| {
            let name = key[key_prefix.len()..].to_string();
            (name.clone(), (name, value))
        })
        .collect();
    page_of(&named, request, |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    }
}
