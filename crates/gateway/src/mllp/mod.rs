//! `mllp` routes: HL7 v2 framed by MLLP. A connection is either relayed
//! frame by frame to the receiver ([`relay`]) or, on a store-and-forward
//! route, acknowledged once journaled ([`ingest`]) and delivered later by
//! the route's worker ([`deliver`]).

pub(crate) mod deliver;
pub(crate) mod frame_deadline;
pub(crate) mod ingest;
pub(crate) mod relay;
