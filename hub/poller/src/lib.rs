//! The poller: scheduled pulls from partners that only offer query APIs (the e-licence
//! library, carrier usage, cloud metrics, a 12345 deployment without pushes).
//!
//! Each `[[pull]]` of an adapter manifest that a deployment lists under
//! `[partners.<partner>] pulls` runs as one job:
//!
//! * **schedule**: every N ms or on a cron pattern, plus jitter, within active hours;
//! * **lease**: before a run the job takes the lease `pull:<partner>/<job>` in the shared state
//!   store (renewed after every page, released at the end), so two replicas never run the same
//!   pull at once; a replica that dies loses its lease when the TTL runs out and another takes
//!   over at its next tick;
//! * **window and pages**: a run asks for `[watermark, min(now - settle, watermark + max_window)]`
//!   page by page until a short page (or the total) ends the window, then the next window,
//!   until it has caught up;
//! * **cursor**: `{watermark, window in progress, next page}` is saved in the state store only
//!   after every item of the page is on Kafka, so a crash repeats at most one page;
//! * **de-duplication**: each item claims the receipt `(pull:<partner>, <job>:<item id>[:<version>])`
//!   before it is produced and completes it after the broker's acknowledgement. A repeated page
//!   finds the receipts done and produces nothing; an item whose claim was left pending by a
//!   crash is produced again with the *same* message id, so consumers remove the duplicate;
//! * **back-pressure**: when Kafka (or the partner) is unavailable the run stops where it is,
//!   without saving the cursor, and the next tick starts from the same page;
//! * items the inbound mapping refuses are dead-lettered (route `<partner>/pull.<job>`) with
//!   the item's bytes sealed as a whole under the key ring (the raw item is the partner's shape,
//!   whose personal fields no contract names), and the run goes on; a replayed dead letter
//!   comes back on the replay topic, is opened and put like a pulled item ([`start_replays`]).

mod cursor;
mod job;

pub use cursor::Cursor;
pub use job::{run_once, start_pulls, start_replays, PullContext, PullJob, RunError, RunReport};
