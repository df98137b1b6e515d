//! The port-block pattern: a service block at `base`, its WebSocket at `base + 1`,
//! Prometheus metrics at `base + 90` and health at `base + 91`.

use serde::{Deserialize, Serialize};

/// The four listeners of one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBlock {
    pub api: u16,
    pub ws: u16,
    pub metrics: u16,
    pub health: u16,
}

impl PortBlock {
    /// The block that starts at `base`. Base `0` means "pick free ports" for all four.
    ///
    /// Returns `None` when `base + 91` does not fit in a port number.
    pub const fn from_base(base: u16) -> Option<PortBlock> {
        if base == 0 {
            return Some(PortBlock { api: 0, ws: 0, metrics: 0, health: 0 });
        }
        if base > u16::MAX - 91 {
            return None;
        }
        Some(PortBlock { api: base, ws: base + 1, metrics: base + 90, health: base + 91 })
    }
}

/// Default port bases of the platform (see `spec/platform.md`).
pub mod defaults {
    pub const ADMIN: u16 = 3000;
    pub const STREAM_MANAGER: u16 = 4200;
    pub const STREAM_MANAGER_RTMP: u16 = 1935;
    pub const EVENT_HANDLER: u16 = 4300;
    pub const AUCTION_ENGINE: u16 = 4400;
    pub const AGENT_SERVICE: u16 = 4500;
    /// The X integration; the platform spec gives it no block, so it takes the next one.
    pub const SOCIAL: u16 = 4600;
    pub const REDIS: u16 = 6379;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_follows_base_plus_one_ninety_ninety_one() {
        assert_eq!(
            PortBlock::from_base(4400),
            Some(PortBlock { api: 4400, ws: 4401, metrics: 4490, health: 4491 })
        );
    }

    #[test]
    fn base_zero_picks_free_ports_everywhere() {
        assert_eq!(PortBlock::from_base(0), Some(PortBlock { api: 0, ws: 0, metrics: 0, health: 0 }));
    }

    #[test]
    fn base_too_high_for_the_block_is_refused() {
        assert_eq!(PortBlock::from_base(65_500), None);
    }
}
