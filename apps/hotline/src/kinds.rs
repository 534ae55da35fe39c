//! The eight ticket events and the contracts they follow.

use hub_contracts::{Catalog, Contract};

/// One ticket event, named as in the glossary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// 派单: the platform dispatched the ticket (inbound).
    Dispatched,
    /// 督办: the platform urged it (inbound).
    Urged,
    /// 回访: the platform visited the caller (inbound).
    Visited,
    /// 销单: the platform closed it (inbound).
    Closed,
    /// 签收: we signed for it (outbound).
    Signed,
    /// 退单: we returned it (outbound).
    Returned,
    /// 延期申请: we asked for more time (outbound).
    ExtensionRequested,
    /// 办结回复: we replied with the result (outbound).
    Replied,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Dispatched,
        Kind::Urged,
        Kind::Visited,
        Kind::Closed,
        Kind::Signed,
        Kind::Returned,
        Kind::ExtensionRequested,
        Kind::Replied,
    ];
    pub const INBOUND: [Kind; 4] = [Kind::Dispatched, Kind::Urged, Kind::Visited, Kind::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dispatched => "dispatched",
            Kind::Urged => "urged",
            Kind::Visited => "visited",
            Kind::Closed => "closed",
            Kind::Signed => "signed",
            Kind::Returned => "returned",
            Kind::ExtensionRequested => "extension_requested",
            Kind::Replied => "replied",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The topic the contract declares (also the default topic and the personal-data context).
    pub fn contract_topic(self) -> &'static str {
        match self {
            Kind::Dispatched => "hotline.ticket.dispatched.v1",
            Kind::Urged => "hotline.ticket.urged.v1",
            Kind::Visited => "hotline.ticket.visited.v1",
            Kind::Closed => "hotline.ticket.closed.v1",
            Kind::Signed => "hotline.ticket.signed.v1",
            Kind::Returned => "hotline.ticket.returned.v1",
            Kind::ExtensionRequested => "hotline.ticket.extension_requested.v1",
            Kind::Replied => "hotline.ticket.replied.v1",
        }
    }

    pub fn is_inbound(self) -> bool {
        Kind::INBOUND.contains(&self)
    }
}

/// The loaded contracts, with each kind's one found once at start.
#[derive(Debug, Clone)]
pub struct Contracts {
    pub catalog: Catalog,
    index: [usize; 8],
}

impl Contracts {
    /// Finds the eight hotline contracts in `catalog`; names the first one missing.
    pub fn new(catalog: Catalog) -> Result<Self, String> {
        let mut index = [0usize; 8];
        for (i, k) in Kind::ALL.into_iter().enumerate() {
            index[i] = catalog
                .contracts
                .iter()
                .position(|c| c.declaration.topic == k.contract_topic())
                .ok_or_else(|| format!("no contract declares `{}`", k.contract_topic()))?;
        }
        Ok(Self { catalog, index })
    }

    pub fn get(&self, kind: Kind) -> &Contract {
        let i = Kind::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("every kind is in ALL");
        &self.catalog.contracts[self.index[i]]
    }

    /// The contract of an event stored under its contract topic.
    pub fn by_topic(&self, topic: &str) -> Option<&Contract> {
        Kind::ALL
            .into_iter()
            .find(|k| k.contract_topic() == topic)
            .map(|k| self.get(k))
    }
}
