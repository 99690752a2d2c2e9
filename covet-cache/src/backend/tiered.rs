//! Two tiers as one backend.
