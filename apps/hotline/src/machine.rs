//! The ticket state machine, and the deadline status derived from it. Pure: no I/O.
//!
//! ```text
//!                    (platform) dispatched
//!                              │
//!                              ▼
//!   ┌──────────────────── DISPATCHED ─────────── return ──────────────┐
//!   │                          │ sign                                  │
//!   │                          ▼                                       ▼
//!   │  ┌─────────────────── SIGNED ──── return (within the window) ─▶ RETURNED
//!   │  │ request_extension     │ reply                                 │
//!   │  ▼                       ▼                                       │
//!   │ EXTENSION_REQUESTED ─▶ REPLIED ◀─ reply                          │
//!   │  │ (request again)       │                                       │
//!   │  └─ return (window) ─────┼───────────────────────────────────────┘
//!   │                          │      RETURNED / REPLIED ── (platform) dispatched again ─▶ DISPATCHED
//!   ▼                          ▼
//!  any status ── (platform) closed ──▶ CLOSED (final)
//! ```
//!
//! Urged (督办) and visited (回访) are events on the ticket in any status; they change its
//! urge count, satisfaction and resolution, never its status. The contracts carry no decision
//! on an extension request, so EXTENSION_REQUESTED lasts until the reply (or another request).

use serde::Serialize;

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// 待签收: dispatched to us, not signed for yet.
    Dispatched,
    /// 办理中: signed for, being handled.
    Signed,
    /// 延期申请中: an extension was asked for; still being handled.
    ExtensionRequested,
    /// 已回复: the result was replied; the platform visits and closes.
    Replied,
    /// 已退单: returned to the platform.
    Returned,
    /// 已销单: closed by the platform. Final.
    Closed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Dispatched,
        Status::Signed,
        Status::ExtensionRequested,
        Status::Replied,
        Status::Returned,
        Status::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Dispatched => "DISPATCHED",
            Status::Signed => "SIGNED",
            Status::ExtensionRequested => "EXTENSION_REQUESTED",
            Status::Replied => "REPLIED",
            Status::Returned => "RETURNED",
            Status::Closed => "CLOSED",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Status::Dispatched => "待签收",
            Status::Signed => "办理中",
            Status::ExtensionRequested => "延期申请中",
            Status::Replied => "已回复",
            Status::Returned => "已退单",
            Status::Closed => "已销单",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The deadline that matters now: the sign deadline before signing, the handling deadline
    /// while handling; none once the ticket left our hands.
    pub fn active_deadline(self, sign_ms: i64, handle_ms: i64) -> Option<i64> {
        match self {
            Status::Dispatched => Some(sign_ms),
            Status::Signed | Status::ExtensionRequested => Some(handle_ms),
            Status::Replied | Status::Returned | Status::Closed => None,
        }
    }

    /// Status after the platform dispatched the ticket again: back to us when it had left our
    /// hands (returned, or replied and sent back for more work); unchanged otherwise (a repeated
    /// dispatch only refreshes fields and deadlines; a closed ticket stays closed).
    pub fn on_redispatch(self) -> Status {
        match self {
            Status::Returned | Status::Replied => Status::Dispatched,
            other => other,
        }
    }
}

/// What a case handler can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// 签收
    Sign,
    /// 退单
    Return,
    /// 延期申请
    RequestExtension,
    /// 办结回复
    Reply,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Sign,
        Action::Return,
        Action::RequestExtension,
        Action::Reply,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Sign => "sign",
            Action::Return => "return",
            Action::RequestExtension => "request_extension",
            Action::Reply => "reply",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Action::Sign => "签收",
            Action::Return => "退单",
            Action::RequestExtension => "延期申请",
            Action::Reply => "办结回复",
        }
    }
}

/// The status `action` leads to from `status`, if the machine allows it there. (The return
/// window is checked separately: it depends on the clock.)
pub fn next(status: Status, action: Action) -> Option<Status> {
    use Action as A;
    use Status as S;
    match (status, action) {
        (S::Dispatched, A::Sign) => Some(S::Signed),
        (S::Dispatched | S::Signed | S::ExtensionRequested, A::Return) => Some(S::Returned),
        (S::Signed | S::ExtensionRequested, A::RequestExtension) => Some(S::ExtensionRequested),
        (S::Signed | S::ExtensionRequested, A::Reply) => Some(S::Replied),
        _ => None,
    }
}

/// Whether a return is still allowed: always before signing; after, only within `window_ms`
/// of the dispatch.
pub fn return_in_window(
    status: Status,
    dispatched_at_ms: i64,
    now_ms: i64,
    window_ms: i64,
) -> bool {
    status == Status::Dispatched || now_ms <= dispatched_at_ms.saturating_add(window_ms)
}

/// The actions the machine allows in `status` (the return window aside).
pub fn allowed(status: Status) -> Vec<Action> {
    Action::ALL
        .into_iter()
        .filter(|a| next(status, *a).is_some())
        .collect()
}

/// How a ticket stands against its active deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineStatus {
    /// 已超期: the deadline has passed.
    Overdue,
    /// 24 小时内到期
    DueWithin24h,
    /// 未到期, more than 24 hours left.
    OnTime,
    /// The ticket is no longer ours to handle.
    NotApplicable,
}

/// 24 hours, the "due soon" horizon supervisors watch.
pub const DUE_SOON_MS: i64 = 24 * 3600 * 1000;

impl DeadlineStatus {
    pub fn of(active_deadline_ms: Option<i64>, now_ms: i64) -> Self {
        match active_deadline_ms {
            None => DeadlineStatus::NotApplicable,
            Some(d) if d < now_ms => DeadlineStatus::Overdue,
            Some(d) if d <= now_ms + DUE_SOON_MS => DeadlineStatus::DueWithin24h,
            Some(_) => DeadlineStatus::OnTime,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeadlineStatus::Overdue => "overdue",
            DeadlineStatus::DueWithin24h => "due_within_24h",
            DeadlineStatus::OnTime => "on_time",
            DeadlineStatus::NotApplicable => "not_applicable",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            DeadlineStatus::Overdue => "已超期",
            DeadlineStatus::DueWithin24h => "24小时内到期",
            DeadlineStatus::OnTime => "未到期",
            DeadlineStatus::NotApplicable => "不适用",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            DeadlineStatus::Overdue,
            DeadlineStatus::DueWithin24h,
            DeadlineStatus::OnTime,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_allows_exactly_the_documented_transitions() {
        use Action as A;
        use Status as S;
        let table = [
            (S::Dispatched, vec![A::Sign, A::Return]),
            (S::Signed, vec![A::Return, A::RequestExtension, A::Reply]),
            (
                S::ExtensionRequested,
                vec![A::Return, A::RequestExtension, A::Reply],
            ),
            (S::Replied, vec![]),
            (S::Returned, vec![]),
            (S::Closed, vec![]),
        ];
        for (status, actions) in table {
            assert_eq!(allowed(status), actions, "{status:?}");
        }
        assert_eq!(next(S::Dispatched, A::Sign), Some(S::Signed));
        assert_eq!(next(S::Signed, A::Reply), Some(S::Replied));
        assert_eq!(next(S::Closed, A::Reply), None);
    }

    #[test]
    fn returning_after_signing_is_bounded_by_the_window() {
        let h = 3600 * 1000;
        assert!(return_in_window(Status::Dispatched, 0, 100 * h, 24 * h));
        assert!(return_in_window(Status::Signed, 0, 24 * h, 24 * h));
        assert!(!return_in_window(Status::Signed, 0, 24 * h + 1, 24 * h));
    }

    #[test]
    fn deadline_status_has_three_bands_and_none_for_finished_tickets() {
        let now = 1_000_000_000;
        assert_eq!(
            DeadlineStatus::of(Some(now - 1), now),
            DeadlineStatus::Overdue
        );
        assert_eq!(
            DeadlineStatus::of(Some(now), now),
            DeadlineStatus::DueWithin24h
        );
        assert_eq!(
            DeadlineStatus::of(Some(now + DUE_SOON_MS), now),
            DeadlineStatus::DueWithin24h
        );
        assert_eq!(
            DeadlineStatus::of(Some(now + DUE_SOON_MS + 1), now),
            DeadlineStatus::OnTime
        );
        assert_eq!(DeadlineStatus::of(None, now), DeadlineStatus::NotApplicable);
    }

    #[test]
    fn a_redispatch_brings_back_only_tickets_that_left_our_hands() {
        assert_eq!(Status::Returned.on_redispatch(), Status::Dispatched);
        assert_eq!(Status::Replied.on_redispatch(), Status::Dispatched);
        assert_eq!(Status::Signed.on_redispatch(), Status::Signed);
        assert_eq!(Status::Closed.on_redispatch(), Status::Closed);
    }
}
