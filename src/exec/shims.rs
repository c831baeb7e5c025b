//! Stand-ins for Pacemaker's command-line tools, first on every agent's PATH and in
//! `HA_SBIN_DIR`: `crm_attribute`, `crm_master`, `attrd_updater` record what an agent
//! sets or deletes (the operation's result carries it; the node agent writes it to
//! etcd), and answer queries from the node attributes and node name of the request;
//! `crm_node` and `uname -n` answer the request's node name, because several local
//! "nodes" may share one machine; `pacemakerd -$` reports a version so ocf-shellfuncs'
//! `ocf_local_nodename` asks `crm_node -n`. Tools that need a live Pacemaker cluster
//! (`crm_resource`, `crm_mon`, ...) fail as they would without one.
//!
//! The shims are POSIX sh scripts written once by `Executor::new`. Per operation they
//! read three variables: `PACER_NODE_NAME`, `PACER_NODE_ATTRIBUTES` (a file of
//! `name<TAB>value` lines) and `PACER_ATTR_UPDATES` (a file they append
//! `set|delete<TAB>name<TAB>node<TAB>lifetime[<TAB>value]` lines to).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::{AttributeLifetime, AttributeUpdate};

/// Functions shared by the attribute shims: logging and looking a value up (updates
/// made earlier in the same operation first, then the request's node attributes).
const COMMON: &str = r#"
node="${PACER_NODE_NAME:-}"
updates="${PACER_ATTR_UPDATES:-/dev/null}"
attributes="${PACER_NODE_ATTRIBUTES:-/dev/null}"
tab="$(printf '\t')"
newline="
"
log() { printf '%s (pacer shim): %s\n' "$tool" "$*" >&2; }
usage_error() { log "$*"; exit 64; }
# lookup NAME NODE: prints the value and succeeds when the attribute is set.
lookup() {
    found=1
    value=
    if [ "$2" = "$node" ] && [ -r "$attributes" ]; then
        while IFS= read -r line || [ -n "$line" ]; do
            case "$line" in
                "$1$tab"*) value=${line#*"$tab"}; found=0 ;;
            esac
        done < "$attributes"
    fi
    if [ -r "$updates" ]; then
        while IFS= read -r line || [ -n "$line" ]; do
            kind=${line%%"$tab"*}; rest=${line#*"$tab"}
            rname=${rest%%"$tab"*}; rest=${rest#*"$tab"}
            rnode=${rest%%"$tab"*}; rest=${rest#*"$tab"}
            [ "$rname" = "$1" ] && [ "$rnode" = "$2" ] || continue
            case "$kind" in
                set) value=${rest#*"$tab"}; found=0 ;;
                delete) value=; found=1 ;;
            esac
        done < "$updates"
    fi
    [ "$found" = 0 ] && printf '%s\n' "$value"
    return $found
}
# record set|delete NAME NODE LIFETIME [VALUE]
record() {
    case "$2$3$5" in
        *"$tab"*|*"$newline"*) log "refusing a name, node or value with a tab or newline"; exit 64 ;;
    esac
    if [ "$1" = set ]; then
        printf 'set\t%s\t%s\t%s\t%s\n' "$2" "$3" "$4" "$5" >> "$updates" || exit 1
    else
        printf 'delete\t%s\t%s\t%s\n' "$2" "$3" "$4" >> "$updates" || exit 1
    fi
}
"#;

const CRM_ATTRIBUTE: &str = r#"
tool=crm_attribute
name= value= action=query lifetime= scope= target= quiet=0 promotion=0 rsc= default= has_default=0
while [ $# -gt 0 ]; do
    case "$1" in
        -n|--name|--attr-name) [ $# -ge 2 ] || usage_error "$1 needs a value"; name=$2; shift ;;
        --name=*|--attr-name=*) name=${1#*=} ;;
        -v|--update|--attr-value) [ $# -ge 2 ] || usage_error "$1 needs a value"; action=set; value=$2; shift ;;
        --update=*|--attr-value=*) action=set; value=${1#*=} ;;
        -D|--delete|--delete-attr) action=delete ;;
        -G|--query|--get-value) action=query ;;
        -q|--quiet|-Q) quiet=1 ;;
        -l|--lifetime) [ $# -ge 2 ] || usage_error "$1 needs a value"; lifetime=$2; shift ;;
        --lifetime=*) lifetime=${1#*=} ;;
        -t|--type) [ $# -ge 2 ] || usage_error "$1 needs a value"; scope=$2; shift ;;
        --type=*) scope=${1#*=} ;;
        -N|--node|-U|--uname) [ $# -ge 2 ] || usage_error "$1 needs a value"; target=$2; shift ;;
        --node=*|--uname=*) target=${1#*=} ;;
        -p|--promotion) promotion=1 ;;
        --promotion=*) promotion=1; rsc=${1#*=} ;;
        -d|--default) [ $# -ge 2 ] || usage_error "$1 needs a value"; default=$2; has_default=1; shift ;;
        --default=*) default=${1#*=}; has_default=1 ;;
        -i|--id|-s|--set-name|--attr-id) [ $# -ge 2 ] || usage_error "$1 needs a value"; shift ;;
        --id=*|--set-name=*|--attr-id=*) ;;
        -V|-VV|-VVV|--verbose) ;;
        -n*) name=${1#-n} ;;
        -v*) action=set; value=${1#-v} ;;
        -l*) lifetime=${1#-l} ;;
        -N*) target=${1#-N} ;;
        -p*) promotion=1; rsc=${1#-p} ;;
        *) log "ignoring unsupported option $1" ;;
    esac
    shift
done
if [ "$promotion" = 1 ]; then
    [ -n "$rsc" ] || rsc=${OCF_RESOURCE_INSTANCE:-}
    [ -n "$rsc" ] || usage_error "no resource for --promotion (OCF_RESOURCE_INSTANCE is not set)"
    name="master-$rsc"
    [ -n "$lifetime$scope" ] || lifetime=reboot
fi
[ -n "$name" ] || usage_error "no attribute name (-n)"
case "$scope" in
    status) lifetime=reboot ;;
    nodes) [ -n "$lifetime" ] || lifetime=forever ;;
    "") ;;
    *) log "$scope attributes are cluster-wide and not handled by pacer; ignored"
       [ "$action" = query ] && exit 105
       exit 0 ;;
esac
if [ -z "$lifetime" ]; then
    if [ -n "$target" ]; then
        lifetime=forever
    else
        log "cluster properties (no --node and no --lifetime) are not handled by pacer; ignored"
        [ "$action" = query ] && exit 105
        exit 0
    fi
fi
case "$lifetime" in
    reboot) where=status ;;
    forever) where=nodes ;;
    *) usage_error "unknown lifetime $lifetime (reboot or forever)" ;;
esac
[ -n "$target" ] || target=$node
case "$action" in
    set) record set "$name" "$target" "$lifetime" "$value" ;;
    delete) record delete "$name" "$target" "$lifetime" ;;
    query)
        if value=$(lookup "$name" "$target"); then
            :
        elif [ "$has_default" = 1 ]; then
            value=$default
        else
            printf 'crm_attribute: Error performing operation: No such device or address\n' >&2
            exit 105
        fi
        if [ "$quiet" = 1 ]; then
            printf '%s\n' "$value"
        else
            printf 'scope=%s  name=%s value=%s\n' "$where" "$name" "$value"
        fi ;;
esac
exit 0
"#;

const CRM_MASTER: &str = r#"
tool=crm_master
# Like Pacemaker's crm_master: crm_attribute on master-<resource>, lifetime forever
# unless the caller says otherwise.
rsc=${OCF_RESOURCE_INSTANCE:-}
count=$#
while [ "$count" -gt 0 ]; do
    arg=$1; shift; count=$((count - 1))
    case "$arg" in
        -r|--resource) [ "$count" -gt 0 ] || usage_error "$arg needs a value"; rsc=$1; shift; count=$((count - 1)) ;;
        --resource=*) rsc=${arg#*=} ;;
        *) set -- "$@" "$arg" ;;
    esac
done
[ -n "$rsc" ] || { log "No resource specified"; exit 1; }
exec "${0%/*}/crm_attribute" -n "master-$rsc" --lifetime forever "$@"
"#;

const ATTRD_UPDATER: &str = r#"
tool=attrd_updater
name= value= action= target= all=0
while [ $# -gt 0 ]; do
    case "$1" in
        -n|--name) [ $# -ge 2 ] || usage_error "$1 needs a value"; name=$2; shift ;;
        --name=*) name=${1#*=} ;;
        -U|-v|--update|-B|--update-both) [ $# -ge 2 ] || usage_error "$1 needs a value"; action=set; value=$2; shift ;;
        --update=*|--update-both=*) action=set; value=${1#*=} ;;
        -D|--delete) action=delete ;;
        -Q|--query) action=query ;;
        -R|--refresh) action=refresh ;;
        -A|--all) all=1 ;;
        -N|--node) [ $# -ge 2 ] || usage_error "$1 needs a value"; target=$2; shift ;;
        --node=*) target=${1#*=} ;;
        -l|--lifetime|-d|--delay|-Y|--update-delay|-s|--set|-S) [ $# -ge 2 ] || usage_error "$1 needs a value"; shift ;;
        --lifetime=*|--delay=*|--update-delay=*|--set=*) ;;
        -p|--private|-q|--quiet|-V|--verbose|-z|--utilization) ;;
        *) log "ignoring unsupported option $1" ;;
    esac
    shift
done
[ -n "$target" ] || target=$node
case "$action" in
    refresh) exit 0 ;;
    "") usage_error "no command (-U, -D or -Q)" ;;
esac
[ -n "$name" ] || usage_error "no attribute name (-n)"
case "$action" in
    set) record set "$name" "$target" reboot "$value" ;;
    delete) record delete "$name" "$target" reboot ;;
    query)
        if value=$(lookup "$name" "$target"); then
            printf 'name="%s" host="%s" value="%s"\n' "$name" "$target" "$value"
        else
            printf 'attrd_updater: Could not query value of %s: attribute does not exist\n' "$name" >&2
            exit 105
        fi ;;
esac
exit 0
"#;

const CRM_NODE: &str = r#"
tool=crm_node
# Pacer has no corosync node ids; the local node answers as id 1.
case "$1" in
    -n|--name) printf '%s\n' "$node" ;;
    -i|--cluster-id) printf '1\n' ;;
    -N|--name-for-id)
        if [ "$2" = 1 ]; then printf '%s\n' "$node"; else printf 'crm_node: Node ID not found\n' >&2; exit 105; fi ;;
    --name-for-id=1) printf '%s\n' "$node" ;;
    -l|--list) printf '1 %s member\n' "$node" ;;
    -p|--partition) printf '%s\n' "$node" ;;
    -q|--quorum) printf '1\n' ;;
    *) log "ignoring unsupported options $*" ;;
esac
exit 0
"#;

const PACEMAKERD: &str = r#"
tool=pacemakerd
case "$1" in
    '-$'|--version) printf 'Pacemaker 2.1.5 (pacer shim)\nWritten by Andrew Beekhof and the Pacemaker project contributors\n' ;;
    *) log "the cluster daemon is not run by agents under pacer"; exit 64 ;;
esac
"#;

/// Tools whose answers need a running Pacemaker: they fail as they would on a node
/// where Pacemaker is stopped (CRM_EX_DISCONNECT).
const UNAVAILABLE: &[&str] = &["crm_resource", "crm_mon", "cibadmin", "stonith_admin", "crm_ticket", "crm_standby", "crm_failcount"];

const UNAVAILABLE_BODY: &str = r#"
log "not available to agents run by pacer (no Pacemaker cluster); options: $*"
exit 102
"#;

/// Writes every shim into `dir` (which must exist). `real_uname` is the system's
/// `uname`, called for everything but `uname -n`.
pub(crate) fn write_shims(dir: &Path, real_uname: Option<&Path>) -> io::Result<()> {
    let script = |tool_body: &str| format!("#!/bin/sh\n# Written by pacer's executor; see src/exec/shims.rs.\n{COMMON}{tool_body}");
    write_executable(&dir.join("crm_attribute"), &script(CRM_ATTRIBUTE))?;
    write_executable(&dir.join("crm_master"), &script(CRM_MASTER))?;
    write_executable(&dir.join("attrd_updater"), &script(ATTRD_UPDATER))?;
    write_executable(&dir.join("crm_node"), &script(CRM_NODE))?;
    write_executable(&dir.join("pacemakerd"), &script(PACEMAKERD))?;
    for tool in UNAVAILABLE {
        write_executable(&dir.join(tool), &script(&format!("tool={tool}\n{UNAVAILABLE_BODY}")))?;
    }
    let fallback = match real_uname {
        Some(path) => format!("exec {} \"$@\"", shell_quote(&path.to_string_lossy())),
        None => "log \"no system uname found\"; exit 127".to_string(),
    };
    let uname = format!(
        "#!/bin/sh\n# Written by pacer's executor: `uname -n` answers the node the operation runs for.\n\
         if [ $# -eq 1 ] && [ -n \"${{PACER_NODE_NAME:-}}\" ]; then\n    case \"$1\" in\n        -n|--nodename) printf '%s\\n' \"$PACER_NODE_NAME\"; exit 0 ;;\n    esac\nfi\n\
         tool=uname\nlog() {{ printf '%s\\n' \"$*\" >&2; }}\n{fallback}\n"
    );
    write_executable(&dir.join("uname"), &uname)?;
    Ok(())
}

/// Replaces the file by a rename, so a symlink at `path` is never written through.
fn write_executable(path: &Path, text: &str) -> io::Result<()> {
    super::private_dir::replace_file(path, text, 0o755)
}

/// Quotes a word for sh.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The node attributes file the shims answer queries from. Attributes that cannot be
/// written as one `name<TAB>value` line are left out (and logged).
pub(crate) fn render_node_attributes(attributes: &BTreeMap<String, String>) -> String {
    let mut text = String::new();
    for (name, value) in attributes {
        if name.contains(['\t', '\n']) || value.contains('\n') {
            tracing::warn!(attribute = %name, "node attribute with a tab or newline is not visible to agents");
            continue;
        }
        text.push_str(name);
        text.push('\t');
        text.push_str(value);
        text.push('\n');
    }
    text
}

/// Reads the updates file the shims appended to, in order.
pub(crate) fn parse_updates(text: &str) -> Vec<AttributeUpdate> {
    let mut updates = Vec::new();
    for line in text.lines() {
        let mut fields = line.splitn(5, '\t');
        let (Some(kind), Some(name), Some(node), Some(lifetime)) = (fields.next(), fields.next(), fields.next(), fields.next()) else {
            tracing::warn!(line, "unreadable attribute update from a shim");
            continue;
        };
        let lifetime = match lifetime {
            "reboot" => AttributeLifetime::Reboot,
            "forever" => AttributeLifetime::Forever,
            other => {
                tracing::warn!(lifetime = other, "unknown attribute lifetime from a shim");
                continue;
            }
        };
        let value = match kind {
            "set" => Some(fields.next().unwrap_or("").to_string()),
            "delete" => None,
            other => {
                tracing::warn!(kind = other, "unknown attribute update from a shim");
                continue;
            }
        };
        updates.push(AttributeUpdate { name: name.to_string(), node: node.to_string(), lifetime, value });
    }
    updates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_are_read_in_order_with_values_that_hold_tabs() {
        let updates = parse_updates("set\tmaster-db\tn1\treboot\t10\ndelete\tmaster-db\tn1\treboot\nset\tx\tn1\tforever\ta\tb\n");
        assert_eq!(updates.len(), 3);
        assert_eq!(updates[0], AttributeUpdate { name: "master-db".into(), node: "n1".into(), lifetime: AttributeLifetime::Reboot, value: Some("10".into()) });
        assert_eq!(updates[1].value, None);
        assert_eq!((updates[2].lifetime, updates[2].value.as_deref()), (AttributeLifetime::Forever, Some("a\tb")));
    }

    #[test]
    fn node_attributes_skip_what_a_line_cannot_hold() {
        let attributes = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".to_string(), "x\ny".to_string())]);
        assert_eq!(render_node_attributes(&attributes), "a\t1\n");
    }
}
