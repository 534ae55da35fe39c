//! The production profile's checks that need more than the configuration's text: the key ring
//! file. The configuration's own checks are in [`crate::config`] (`HubConfig::validate`).

use hub_config::Loaded;

use crate::config::{HubConfig, Profile};

/// `PROFILE_DEVELOPMENT_KEYS`: in the production profile, a development key ring (marked
/// `DEVELOPMENT ONLY`, or holding a published key) is refused. `None` when all is well or the
/// profile is `development`; an unreadable file is left to the key ring's own loading.
pub fn key_ring_problem(loaded: &Loaded<HubConfig>) -> Option<String> {
    if loaded.config.hub.profile != Profile::Production {
        return None;
    }
    let g = loaded.config.gateway.as_ref()?;
    let path = loaded.resolve(&g.key_ring);
    let text = std::fs::read_to_string(&path).ok()?;
    hub_security::field::development_ring(&text).map(|why| {
        format!(
            "{}: key `gateway.key_ring`: PROFILE_DEVELOPMENT_KEYS: {} is a development key ring ({why}); \
             its keys are public (profile = \"production\"; set [hub] profile = \"development\" only on a development machine)",
            loaded.path.display(),
            path.display()
        )
    })
}
