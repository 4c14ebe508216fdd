//! One real-time connection's state, whatever carries it (a WebSocket or an event stream):
//! its subscriptions and rooms, each authorized against the caller's grants. Dropping the
//! session leaves every channel and room it was in.

use super::{CatchUp, Hub, Outbox, Outgoing, SlowPolicy, Subscribe};
use crate::http::{Problem, ProblemCode};
use std::{collections::HashMap, sync::Arc};
use tokio::sync::mpsc;
use wharf_engine::{
    broker::Interested,
    security::{Action, Principal, Resource, ResourceKind},
};
use wharf_model::pattern::Syntax;

/// The name a room's subscription has among the connection's subscriptions.
fn room_sub(room: &str) -> String {
    format!("room:{room}")
}

/// A subscription as asked for, checked and named.
pub struct SubscribeRequest<'a> {
    pub topic: &'a str,
    pub sub: &'a str,
    pub pattern: &'a str,
    pub syntax: Syntax,
    pub filter: Option<&'a str>,
    pub last_id: Option<&'a str>,
    pub since_ms: Option<u64>,
}

#[derive(Debug)]
pub struct Session {
    hub: Arc<Hub>,
    pub id: u64,
    pub principal: Principal,
    outbox: Arc<Outbox>,
    /// Subscriptions by name: their topics.
    subs: HashMap<String, String>,
    /// Rooms joined: the member name used in each.
    rooms: HashMap<String, String>,
}

impl Session {
    pub fn open(
        hub: Arc<Hub>,
        principal: Principal,
        slow: SlowPolicy,
    ) -> (Session, mpsc::Receiver<Outgoing>) {
        let (id, outbox, outgoing) = hub.connect(slow);
        let session = Session {
            hub,
            id,
            principal,
            outbox,
            subs: HashMap::new(),
            rooms: HashMap::new(),
        };
        (session, outgoing)
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// How this connection appears in rooms unless it names itself: its caller, or
    /// `connection-N` for the anonymous caller of an open server.
    pub fn default_member(&self) -> String {
        match &self.principal.identity {
            wharf_engine::security::Identity::Anonymous => format!("connection-{}", self.id),
            wharf_engine::security::Identity::Browser { member } => member.clone(),
            identity => identity.to_string(),
        }
    }

    /// Checks that the caller may do `action` on topic `topic`.
    pub fn authorize(&self, action: Action, topic: &str) -> Result<(), Problem> {
        let resource = Resource {
            kind: ResourceKind::Topic,
            name: topic,
        };
        let engine = self.hub.engine();
        Ok(engine.authorize(&self.principal, action, resource)?)
    }

    pub fn subscribe(&mut self, request: SubscribeRequest<'_>) -> Result<CatchUp, Problem> {
        self.authorize(Action::Read, request.topic)?;
        let renewing = self.subs.get(request.sub);
        if renewing.is_some_and(|topic| topic != request.topic) {
            let detail = format!(
                "subscription `{}` is on another topic; unsubscribe it first",
                request.sub
            );
            return Err(invalid("sub", detail));
        }
        let max = self.hub.settings.subscriptions_max;
        if renewing.is_none() && self.subs.len() >= max {
            return Err(Problem::new(ProblemCode::LimitReached).with_detail(format!(
                "a connection holds at most {max} subscriptions and rooms (realtime.subscriptions_max)"
            )));
        }
        let subscribe = Subscribe {
            topic: request.topic,
            sub: request.sub,
            interested: Interested {
                pattern: request.pattern,
                syntax: request.syntax,
                filter: request.filter,
            },
            last_id: request.last_id,
            since_ms: request.since_ms,
        };
        let catch_up = self.hub.subscribe(self.id, &self.outbox, subscribe)?;
        self.subs
            .insert(request.sub.to_string(), request.topic.to_string());
        Ok(catch_up)
    }

    /// Ends subscription `sub`; the topic it was on.
    pub fn unsubscribe(&mut self, sub: &str) -> Result<String, Problem> {
        let Some(topic) = self.subs.remove(sub) else {
            return Err(Problem::new(ProblemCode::NotFound)
                .with_detail(format!("no subscription named `{sub}` on this connection"))
                .with_field("sub"));
        };
        if let Some(room) = sub.strip_prefix("room:") {
            self.rooms.remove(room);
        }
        self.hub.unsubscribe(&topic, self.id, Some(sub));
        Ok(topic)
    }

    /// Joins room `room` (a topic) as `member`: subscribes to all its messages and is present.
    pub fn join(&mut self, room: &str, member: Option<String>) -> Result<JoinedRoom, Problem> {
        let own = self.default_member();
        let browser = matches!(
            self.principal.identity,
            wharf_engine::security::Identity::Browser { .. }
        );
        // A page is in rooms under its token's member name, not one it picks.
        if browser && member.as_ref().is_some_and(|member| *member != own) {
            return Err(Problem::new(ProblemCode::Forbidden)
                .with_detail(format!("this browser token joins rooms as `{own}` only"))
                .with_field("member"));
        }
        let member = member.unwrap_or(own);
        if member.is_empty() || member.len() > 128 {
            return Err(invalid("member", "1 to 128 bytes".to_string()));
        }
        let sub = room_sub(room);
        self.subscribe(SubscribeRequest {
            topic: room,
            sub: &sub,
            pattern: "#",
            syntax: Syntax::Amqp,
            filter: None,
            last_id: None,
            since_ms: None,
        })?;
        self.rooms.insert(room.to_string(), member.clone());
        let members = self.hub.join(room, self.id, &member);
        Ok(JoinedRoom { member, members })
    }

    pub fn leave(&mut self, room: &str) -> Result<(), Problem> {
        if !self.rooms.contains_key(room) {
            return Err(Problem::new(ProblemCode::NotFound)
                .with_detail(format!("this connection is not in room `{room}`"))
                .with_field("room"));
        }
        self.hub.leave(room, self.id);
        self.unsubscribe(&room_sub(room)).map(|_| ())
    }

    pub fn members(&self, room: &str) -> Result<Vec<String>, Problem> {
        self.authorize(Action::Read, room)?;
        Ok(self.hub.members(room))
    }

    /// Forgets subscription `sub` whose channel ended (its topic was deleted).
    pub fn forget(&mut self, sub: &str) {
        self.subs.remove(sub);
        if let Some(room) = sub.strip_prefix("room:") {
            self.rooms.remove(room);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for room in self.rooms.keys() {
            self.hub.leave(room, self.id);
        }
        let topics: std::collections::BTreeSet<&String> = self.subs.values().collect();
        for topic in topics {
            self.hub.unsubscribe(topic, self.id, None);
        }
        super::metrics::disconnected();
    }
}

/// What joining a room answers.
pub struct JoinedRoom {
    pub member: String,
    pub members: Vec<String>,
}

fn invalid(field: &str, detail: String) -> Problem {
    Problem::new(ProblemCode::InvalidField)
        .with_detail(detail)
        .with_field(field)
}
