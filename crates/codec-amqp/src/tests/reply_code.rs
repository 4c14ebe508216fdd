//! Reply codes: their numbers and which close a channel rather than the connection.

use crate::{ReplyCode, ReplyCodeUnknown, Scope};

#[test]
fn reply_codes_have_the_spec_numbers_and_scopes() {
    let expected = [
        (200, Scope::Success),
        (311, Scope::Channel),
        (312, Scope::Channel),
        (313, Scope::Channel),
        (320, Scope::Connection),
        (402, Scope::Connection),
        (403, Scope::Channel),
        (404, Scope::Channel),
        (405, Scope::Channel),
        (406, Scope::Channel),
        (501, Scope::Connection),
        (502, Scope::Connection),
        (503, Scope::Connection),
        (504, Scope::Connection),
        (505, Scope::Connection),
        (506, Scope::Connection),
        (530, Scope::Connection),
        (540, Scope::Connection),
        (541, Scope::Connection),
    ];
    let actual: Vec<_> = ReplyCode::ALL
        .iter()
        .map(|reply| (reply.code(), reply.scope()))
        .collect();
    assert_eq!(actual, expected);
}

#[test]
fn reply_codes_convert_from_numbers() {
    for reply in ReplyCode::ALL {
        assert_eq!(ReplyCode::try_from(reply.code()), Ok(reply));
    }
    assert_eq!(ReplyCode::try_from(404), Ok(ReplyCode::NotFound));
    assert_eq!(ReplyCode::NotFound.name(), "NOT_FOUND");
    assert_eq!(ReplyCode::try_from(407), Err(ReplyCodeUnknown(407)));
}
