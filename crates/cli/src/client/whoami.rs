//! `wharf whoami`: who the server takes the command's credentials for (`GET /v1/whoami`).
//!
//! Prints the answer as pretty JSON: `kind` (`anonymous`, `user` or `token`), `name`, `id`
//! and `owner` for a token, and the grants. Never the credentials themselves.

use super::{print_json_pretty, Client, ClientError};

pub fn run(client: &Client) -> Result<(), ClientError> {
    print_json_pretty(&client.get("/v1/whoami")?)
}
