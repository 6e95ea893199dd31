//! Network impairment, in process and deterministic: a spec
//! (`loss=5%,burst=3,delay=80ms,jitter=20ms,reorder=1%,rate=800kbit,seed=7`) and the
//! sans-I/O model that applies it to the packets of one direction of a path. Pure: no
//! sockets, no clock; whoever owns the path feeds it packets and the time. A schedule
//! changes the spec over time.

mod model;
mod schedule;
mod spec;

pub use model::{
    ImpairCounters, Impairment, BUCKET_TIME, MAX_IN_FLIGHT, MIN_BUCKET_BYTES, MIN_QUEUE_BYTES,
    QUEUE_TIME, REORDER_HOLD,
};
pub use schedule::{
    derive_seed, ImpairSchedule, ImpairScheduleError, MAX_SCHEDULE_BYTES, MAX_SCHEDULE_ENTRIES,
};
pub use spec::{
    ImpairSpec, ImpairSpecError, IMPAIR_KEYS, MAX_IMPAIR_BURST, MAX_IMPAIR_DELAY, MAX_IMPAIR_RATE,
    MIN_IMPAIR_RATE,
};
