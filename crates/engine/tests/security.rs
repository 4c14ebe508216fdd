//! Users, tokens and grants through the engine: the open store, passwords, tokens that expire
//! and are revoked, grants checked by the one function every door calls, everything kept over a
//! restart, and the audit log.

use std::{sync::Arc, time::Duration};
use wharf_engine::{
    clock::ManualClock,
    security::{
        audit::AuditEntry, Action, AuthFailure, Credentials, Grant, Identity, Resource,
        ResourceKind, TokenRequest,
    },
    Engine, EngineConfig, EngineError,
};
use wharf_storage::MemoryStore;

const START: u64 = 1_800_000_000_000;

async fn open(store: &MemoryStore, clock: &Arc<ManualClock>) -> Engine {
    let storage = Arc::new(store.clone());
    Engine::open(storage, clock.clone(), EngineConfig::default())
        .await
        .unwrap()
}

fn grant(actions: &[Action], resource: &str) -> Grant {
    Grant {
        actions: actions.to_vec(),
        resource: resource.parse().unwrap(),
    }
}

fn queue(name: &str) -> Resource<'_> {
    Resource {
        kind: ResourceKind::Queue,
        name,
    }
}

fn password(user: &str, password: &str) -> Credentials {
    Credentials::Password {
        user: user.to_string(),
        password: password.to_string(),
    }
}

fn reason(result: Result<impl std::fmt::Debug, EngineError>) -> AuthFailure {
    match result {
        Err(EngineError::Unauthenticated { reason }) => reason,
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test]
async fn an_open_store_lets_anyone_in_until_the_first_user() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(START));
    let engine = open(&store, &clock).await;
    assert!(engine.security_open());
    let anyone = engine.authenticate(None).await.unwrap();
    assert_eq!(anyone.identity, Identity::Anonymous);
    assert!(engine
        .authorize(&anyone, Action::Manage, queue("x"))
        .is_ok());
    let (alice, created) = engine
        .put_user(
            "alice",
            Some("wonderland".into()),
            Some(vec![Grant::admin()]),
        )
        .await
        .unwrap();
    assert!(created && alice.grants == vec![Grant::admin()]);
    assert!(!engine.security_open());
    assert_eq!(
        reason(engine.authenticate(None).await),
        AuthFailure::Missing
    );
}

#[tokio::test]
async fn passwords_and_grants_decide_and_survive_a_restart() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(START));
    let engine = open(&store, &clock).await;
    let orders = vec![grant(&[Action::Read, Action::Write], "queue:orders.*")];
    engine
        .put_user("bob", Some("builder-1".into()), Some(orders.clone()))
        .await
        .unwrap();
    let bob = engine
        .authenticate(Some(&password("bob", "builder-1")))
        .await
        .unwrap();
    assert!(engine
        .authorize(&bob, Action::Write, queue("orders.eu"))
        .is_ok());
    let denied = engine.authorize(&bob, Action::Manage, queue("orders.eu"));
    let Err(EngineError::Forbidden { action, resource }) = denied else {
        panic!("{denied:?}");
    };
    assert_eq!(
        (action, resource.as_str()),
        (Action::Manage, "queue:orders.eu")
    );
    assert!(engine
        .authorize(&bob, Action::Read, queue("billing"))
        .is_err());
    let wrong = engine
        .authenticate(Some(&password("bob", "builder-2")))
        .await;
    assert_eq!(reason(wrong), AuthFailure::Invalid);
    let nobody = engine
        .authenticate(Some(&password("nobody", "builder-1")))
        .await;
    assert_eq!(
        reason(nobody),
        AuthFailure::Invalid,
        "the same answer for unknown users"
    );

    // A new password replaces the old at once, remembered checks included.
    engine
        .put_user("bob", Some("builder-3".into()), None)
        .await
        .unwrap();
    let old = engine
        .authenticate(Some(&password("bob", "builder-1")))
        .await;
    assert_eq!(reason(old), AuthFailure::Invalid);
    drop(engine);
    let engine = open(&store, &clock).await;
    let bob = engine
        .authenticate(Some(&password("bob", "builder-3")))
        .await
        .unwrap();
    assert_eq!(
        bob.grants(),
        orders.as_slice(),
        "grants kept when only the password changed"
    );
    let short = engine.put_user("carol", Some("short".into()), None).await;
    assert!(
        matches!(short, Err(EngineError::InvalidField { .. })),
        "{short:?}"
    );
    // A user without a password exists (its tokens act for it) but never signs in, with any
    // password, the empty one included.
    let (_, created) = engine
        .put_user("carol", None, None)
        .await
        .expect("no password");
    assert!(created);
    for attempt in ["", "short", "long enough"] {
        let credentials = Credentials::Password {
            user: "carol".into(),
            password: attempt.into(),
        };
        let signed_in = engine.authenticate(Some(&credentials)).await;
        assert!(signed_in.is_err(), "{attempt:?} signed in");
    }
    let bad_name = engine
        .put_user("car ol", Some("long enough".into()), None)
        .await;
    assert!(matches!(bad_name, Err(EngineError::InvalidField { .. })));
}

#[tokio::test]
async fn tokens_hold_their_grants_expire_and_are_revoked_at_once() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(START));
    let engine = open(&store, &clock).await;
    let held = vec![grant(&[Action::Read, Action::Write], "queue:orders.*")];
    engine
        .put_user("dora", Some("explorer".into()), Some(held.clone()))
        .await
        .unwrap();
    let dora = engine
        .authenticate(Some(&password("dora", "explorer")))
        .await
        .unwrap();
    let request = TokenRequest {
        name: "ci".into(),
        grants: vec![grant(&[Action::Read], "queue:orders.*")],
        expires_in: Some(Duration::from_secs(60)),
    };
    let created = engine.create_token(&dora, request).await.unwrap();
    assert!(created.token.starts_with("wharf_"), "{}", created.token);
    assert_eq!(created.info.owner.as_deref(), Some("dora"));
    assert_eq!(created.info.expires_at, Some(START + 60_000));
    let bearer = Credentials::Token(created.token.clone());
    let ci = engine.authenticate(Some(&bearer)).await.unwrap();
    assert!(engine
        .authorize(&ci, Action::Read, queue("orders.eu"))
        .is_ok());
    assert!(engine
        .authorize(&ci, Action::Write, queue("orders.eu"))
        .is_err());
    // A token cannot hold more than its creator.
    let more = TokenRequest {
        name: "more".into(),
        grants: vec![grant(&[Action::Manage], "queue:orders.*")],
        expires_in: None,
    };
    let refused = engine.create_token(&dora, more).await;
    assert!(
        matches!(refused, Err(EngineError::Forbidden { .. })),
        "{refused:?}"
    );
    // A token whose secret is off by one character is refused.
    let mut forged = created.token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let forged = engine.authenticate(Some(&Credentials::Token(forged))).await;
    assert_eq!(reason(forged), AuthFailure::Invalid);

    clock.advance(Duration::from_secs(61));
    assert_eq!(
        reason(engine.authenticate(Some(&bearer)).await),
        AuthFailure::Expired
    );

    let request = TokenRequest {
        name: "long".into(),
        grants: held.clone(),
        expires_in: None,
    };
    let long = engine.create_token(&dora, request).await.unwrap();
    let long_bearer = Credentials::Token(long.token.clone());
    assert!(engine.authenticate(Some(&long_bearer)).await.is_ok());
    assert_eq!(engine.list_tokens(&dora).len(), 2);
    engine.revoke_token(&dora, &long.info.id).await.unwrap();
    assert_eq!(
        reason(engine.authenticate(Some(&long_bearer)).await),
        AuthFailure::Invalid
    );

    // Deleting a user ends its tokens.
    let request = TokenRequest {
        name: "last".into(),
        grants: held,
        expires_in: None,
    };
    let last = engine.create_token(&dora, request).await.unwrap();
    engine.delete_user("dora").await.unwrap();
    let last = engine
        .authenticate(Some(&Credentials::Token(last.token)))
        .await;
    assert_eq!(reason(last), AuthFailure::Invalid);
}

#[tokio::test]
async fn a_seeded_admin_token_is_the_operators_string() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(START));
    let engine = open(&store, &clock).await;
    engine.seed_admin_token("s3cret-admin-token").await.unwrap();
    assert!(!engine.security_open());
    let admin = Credentials::Token("s3cret-admin-token".into());
    let admin = engine.authenticate(Some(&admin)).await.unwrap();
    assert!(admin.is_admin());
    let other = Credentials::Token("s3cret-admin-tokem".into());
    assert_eq!(
        reason(engine.authenticate(Some(&other)).await),
        AuthFailure::Invalid
    );
    // Over AMQP or MQTT a token comes as a password with an empty user name.
    let as_password = password("", "s3cret-admin-token");
    assert!(engine.authenticate(Some(&as_password)).await.is_ok());
}

#[tokio::test]
async fn the_audit_log_keeps_entries_over_a_restart() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(START));
    let engine = open(&store, &clock).await;
    for (n, outcome) in ["ok", "denied", "unauthenticated"].iter().enumerate() {
        let entry = AuditEntry {
            at: 0,
            who: format!("user:u{n}"),
            from: Some("127.0.0.1:5000".into()),
            operation: "DELETE /v1/queues/{name}".into(),
            resource: Some("queue:jobs".into()),
            outcome: outcome.to_string(),
        };
        engine.audit(entry).await.unwrap();
    }
    drop(engine);
    let engine = open(&store, &clock).await;
    let all = engine.audit_read(None, 100).await.unwrap();
    let outcomes: Vec<&str> = all.iter().map(|r| r.entry.outcome.as_str()).collect();
    assert_eq!(outcomes, ["ok", "denied", "unauthenticated"]);
    assert_eq!(all[0].entry.at, START, "stamped with the engine's clock");
    let rest = engine.audit_read(Some(all[0].offset), 100).await.unwrap();
    assert_eq!(rest.len(), 2);
}

/// A flood of wrong passwords queues for its Argon2 runs (at most a few at once, each 19 MiB)
/// and every one is refused; the right password still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_is_refused_and_the_user_still_gets_in() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(START));
    let engine = open(&store, &clock).await;
    engine
        .put_user(
            "erin",
            Some("the right one".into()),
            Some(vec![Grant::admin()]),
        )
        .await
        .unwrap();
    let attempts: Vec<_> = (0..24)
        .map(|n| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let guess = password("erin", &format!("guess number {n}"));
                engine.authenticate(Some(&guess)).await.map(|_| ())
            })
        })
        .collect();
    for attempt in attempts {
        assert_eq!(reason(attempt.await.unwrap()), AuthFailure::Invalid);
    }
    let right = engine
        .authenticate(Some(&password("erin", "the right one")))
        .await;
    assert!(right.is_ok());
}
