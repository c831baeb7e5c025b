//! OCF exit codes (OCF 1.1, plus Pacemaker's 190 and 191): what a resource agent
//! answers. The executor reports them; the scheduler reads history with them.

pub const OK: i32 = 0;
pub const ERR_GENERIC: i32 = 1;
pub const ERR_ARGS: i32 = 2;
pub const UNIMPLEMENTED: i32 = 3;
pub const INSUFFICIENT_PRIV: i32 = 4;
pub const NOT_INSTALLED: i32 = 5;
pub const NOT_CONFIGURED: i32 = 6;
pub const NOT_RUNNING: i32 = 7;
pub const RUNNING_PROMOTED: i32 = 8;
pub const FAILED_PROMOTED: i32 = 9;
pub const DEGRADED: i32 = 190;
pub const DEGRADED_PROMOTED: i32 = 191;
