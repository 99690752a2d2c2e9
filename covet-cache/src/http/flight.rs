//! Request coalescing: one origin request per key at a time, on the
//! crate's one single-flight ([`crate::flight`]).

use std::sync::Arc;

use super::stored::StoredResponse;

/// Keys with an origin request in progress; followers get the stored
/// response the leader published, if any.
pub(crate) type HttpFlights = crate::flight::Flights<Arc<StoredResponse>>;

/// Held by the request that went to the origin; dropping it (stored, not
/// storable, failed or cancelled) wakes the followers.
pub(crate) type Leader = crate::flight::Leader<Arc<StoredResponse>>;

pub(crate) use crate::flight::Role;
