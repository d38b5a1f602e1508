//! The seven webhook event types (docs/webhooks.md) and sets of them. A leaf module: apps record which
//! kinds their endpoints want, shards ask before reporting a `cache_miss`, and the API core's
//! webhook dispatcher filters by them.

/// One webhook event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    ChannelOccupied,
    ChannelVacated,
    MemberAdded,
    MemberRemoved,
    ClientEvent,
    CacheMiss,
    SubscriptionCount,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::ChannelOccupied,
        Kind::ChannelVacated,
        Kind::MemberAdded,
        Kind::MemberRemoved,
        Kind::ClientEvent,
        Kind::CacheMiss,
        Kind::SubscriptionCount,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::ChannelOccupied => "channel_occupied",
            Kind::ChannelVacated => "channel_vacated",
            Kind::MemberAdded => "member_added",
            Kind::MemberRemoved => "member_removed",
            Kind::ClientEvent => "client_event",
            Kind::CacheMiss => "cache_miss",
            Kind::SubscriptionCount => "subscription_count",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind that cancels this one across a hold (`channel_vacated` and `channel_occupied`,
    /// `member_removed` and `member_added`): a return within the hold sends neither.
    pub fn counterpart(self) -> Kind {
        match self {
            Kind::ChannelVacated => Kind::ChannelOccupied,
            Kind::ChannelOccupied => Kind::ChannelVacated,
            Kind::MemberRemoved => Kind::MemberAdded,
            Kind::MemberAdded => Kind::MemberRemoved,
            k => k,
        }
    }

    /// Its place in [`Kind::ALL`], for tables indexed by kind.
    pub fn index(self) -> usize {
        self as usize
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kinds(u8);

impl Kinds {
    pub fn union(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    pub fn contains(self, k: Kind) -> bool {
        self.0 & k.bit() != 0
    }

    /// The kinds an endpoint lists; an empty list means all of them.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Kinds {
        let mut set = Kinds(0);
        for k in names.into_iter().filter_map(Kind::parse) {
            set.0 |= k.bit();
        }
        if set.0 == 0 { Kinds(0x7f) } else { set }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_an_empty_list_means_all() {
        let some = Kinds::from_names(["member_added", "cache_miss", "bogus"]);
        assert!(some.contains(Kind::MemberAdded) && some.contains(Kind::CacheMiss));
        assert!(!some.contains(Kind::ChannelOccupied));
        let all = Kinds::from_names([]);
        assert!(Kind::ALL.iter().all(|k| all.contains(*k)));
        assert_eq!(Kind::MemberAdded.counterpart(), Kind::MemberRemoved);
    }
}
