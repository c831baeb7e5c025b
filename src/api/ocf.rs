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

/// What an exit code means, in Pacemaker's words (`services_ocf_exitcode_str`): the
/// `desc` of a resource event (`CRM_alert_desc`) when the operation ran to its end.
pub fn describe(rc: i32) -> &'static str {
    match rc {
        OK => "ok",
        ERR_GENERIC => "error",
        ERR_ARGS => "invalid parameter",
        UNIMPLEMENTED => "unimplemented feature",
        INSUFFICIENT_PRIV => "insufficient privileges",
        NOT_INSTALLED => "not installed",
        NOT_CONFIGURED => "not configured",
        NOT_RUNNING => "not running",
        RUNNING_PROMOTED => "promoted",
        FAILED_PROMOTED => "promoted (failed)",
        DEGRADED => "degraded",
        DEGRADED_PROMOTED => "promoted (degraded)",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_read_as_pacemaker_writes_them() {
        let codes = [
            OK,
            ERR_GENERIC,
            ERR_ARGS,
            UNIMPLEMENTED,
            INSUFFICIENT_PRIV,
            NOT_INSTALLED,
            NOT_CONFIGURED,
            NOT_RUNNING,
            RUNNING_PROMOTED,
            FAILED_PROMOTED,
            DEGRADED,
            DEGRADED_PROMOTED,
            42,
        ];
        let described: String = codes.into_iter().map(|rc| format!("{rc} {}\n", describe(rc))).collect();
        expect_test::expect![[r#"
            0 ok
            1 error
            2 invalid parameter
            3 unimplemented feature
            4 insufficient privileges
            5 not installed
            6 not configured
            7 not running
            8 promoted
            9 promoted (failed)
            190 degraded
            191 promoted (degraded)
            42 unknown
        "#]]
        .assert_eq(&described);
    }
}
