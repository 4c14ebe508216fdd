//! Class `tx` (90): standard transactions; publishes and acks of a channel take effect at
//! `commit`.

arguments! {
    pub struct Select {}

    pub struct SelectOk {}

    pub struct Commit {}

    pub struct CommitOk {}

    pub struct Rollback {}

    pub struct RollbackOk {}
}

class! {
    /// A method of class `tx`.
    Tx = 90, "tx" {
        Select = 10, "select";
        SelectOk = 11, "select-ok";
        Commit = 20, "commit";
        CommitOk = 21, "commit-ok";
        Rollback = 30, "rollback";
        RollbackOk = 31, "rollback-ok";
    }
}
