//! Class `confirm` (85), a RabbitMQ extension: publisher confirms. After `select` the server
//! acks (or nacks) every publish on the channel by its sequence number.

arguments! {
    /// `nowait` is the spec's spelling here (other classes say `no-wait`).
    pub struct Select {
        pub nowait: bool,
    }

    pub struct SelectOk {}
}

class! {
    /// A method of class `confirm`.
    Confirm = 85, "confirm" {
        Select = 10, "select";
        SelectOk = 11, "select-ok";
    }
}
