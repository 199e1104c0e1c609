//! The settings a checked script gives itself: `SET [LOCAL] lock_timeout`,
//! `RESET lock_timeout`, `SELECT set_config('lock_timeout', ..., is_local)`, and
//! `SET LOCAL pg_migrate.allow`, read from the parse tree (VariableSetStmt,
//! a SELECT of set_config with constant arguments) so that migrate_guard_check()
//! and migrate_review() judge later statements as the live run would.
//!
//! A checked script is taken as one transaction (a revision is one; the live
//! run of a script in BEGIN ... COMMIT is one): SET LOCAL lasts until the
//! script's COMMIT or ROLLBACK, if it has one. As live, only a transaction-local
//! pg_migrate.allow acknowledges: a plain SET of it acknowledges nothing.

use std::ffi::{CStr, CString};

use pgrx::pg_sys::{self, NodeTag};
use pgrx::{is_a, PgList};

use super::rules::{self, Allowance};

/// What the script has set so far. None: not set by the script (the session's value holds).
#[derive(Debug, Default, Clone)]
pub struct ScriptSettings {
    session_lock_timeout_ms: Option<i64>,
    local_lock_timeout_ms: Option<i64>,
    /// pg_migrate.allow as the script last set it, when by SET LOCAL.
    local_allow: Vec<Allowance>,
}

enum Scope {
    Session,
    Local,
}

impl ScriptSettings {
    /// lock_timeout in force for the next statement, if the script set it.
    pub fn lock_timeout_ms(&self) -> Option<i64> {
        self.local_lock_timeout_ms.or(self.session_lock_timeout_ms)
    }

    /// The acknowledgements the script made with SET LOCAL pg_migrate.allow.
    pub fn allowances(&self) -> &[Allowance] {
        &self.local_allow
    }

    /// Take in a statement that may change a setting (others are ignored).
    ///
    /// # Safety
    /// `node` is a raw parse tree node.
    pub unsafe fn observe(&mut self, node: *mut pg_sys::Node) {
        if node.is_null() {
            return;
        }
        if is_a(node, NodeTag::T_VariableSetStmt) {
            self.variable_set(&*(node as *mut pg_sys::VariableSetStmt));
        } else if is_a(node, NodeTag::T_TransactionStmt) {
            use pg_sys::TransactionStmtKind::*;
            let kind = (*(node as *mut pg_sys::TransactionStmt)).kind;
            if matches!(kind, TRANS_STMT_COMMIT | TRANS_STMT_ROLLBACK | TRANS_STMT_PREPARE) {
                self.local_lock_timeout_ms = None;
                self.local_allow.clear();
            }
        } else if is_a(node, NodeTag::T_SelectStmt) {
            for (name, value, local) in set_config_calls(&*(node as *mut pg_sys::SelectStmt)) {
                self.assign(&name, Some(&value), if local { Scope::Local } else { Scope::Session });
            }
        }
    }

    unsafe fn variable_set(&mut self, set: &pg_sys::VariableSetStmt) {
        use pg_sys::VariableSetKind::*;
        let scope = if set.is_local { Scope::Local } else { Scope::Session };
        if set.kind == VAR_RESET_ALL {
            self.assign("lock_timeout", None, scope);
            self.assign("pg_migrate.allow", None, if set.is_local { Scope::Local } else { Scope::Session });
            return;
        }
        if set.name.is_null() {
            return;
        }
        let name = CStr::from_ptr(set.name).to_string_lossy().to_lowercase();
        match set.kind {
            VAR_SET_VALUE => {
                let value = pg_sys::ExtractSetVariableArgs(set as *const _ as *mut _);
                let value = (!value.is_null()).then(|| CStr::from_ptr(value).to_string_lossy().into_owned());
                self.assign(&name, value.as_deref(), scope);
            }
            VAR_SET_DEFAULT | VAR_RESET => self.assign(&name, None, scope),
            _ => {}
        }
    }

    /// `value` None: back to the setting's reset value.
    fn assign(&mut self, name: &str, value: Option<&str>, scope: Scope) {
        match name {
            "lock_timeout" => {
                let ms = match value {
                    Some(value) => parse_ms(value),
                    None => reset_lock_timeout_ms(),
                };
                let Some(ms) = ms else { return };
                match scope {
                    Scope::Local => self.local_lock_timeout_ms = Some(ms),
                    Scope::Session => {
                        // SET overrides an earlier SET LOCAL for the rest of the transaction.
                        self.local_lock_timeout_ms = None;
                        self.session_lock_timeout_ms = Some(ms);
                    }
                }
            }
            "pg_migrate.allow" => {
                self.local_allow = match (scope, value) {
                    (Scope::Local, Some(text)) => rules::parse_allowances(text).unwrap_or_default(),
                    // A plain SET (or RESET) leaves a value that is not this
                    // transaction's own: live, it acknowledges nothing.
                    _ => Vec::new(),
                };
            }
            _ => {}
        }
    }
}

/// A lock_timeout value as the server parses it (a bare number is milliseconds).
fn parse_ms(value: &str) -> Option<i64> {
    let value = CString::new(value).ok()?;
    let mut result = 0;
    // SAFETY: parse_int reads a NUL-terminated string; a NULL hint pointer is allowed.
    let ok = unsafe { pg_sys::parse_int(value.as_ptr(), &mut result, pg_sys::GUC_UNIT_MS as i32, std::ptr::null_mut()) };
    ok.then_some(i64::from(result))
}

/// What RESET lock_timeout goes back to: the session's reset value.
fn reset_lock_timeout_ms() -> Option<i64> {
    // SAFETY: a look-up of a built-in setting by name.
    let value = unsafe { pg_sys::GetConfigOptionResetString(c"lock_timeout".as_ptr()) };
    if value.is_null() {
        return Some(0);
    }
    // SAFETY: a NUL-terminated string owned by the GUC machinery.
    parse_ms(&unsafe { CStr::from_ptr(value) }.to_string_lossy())
}

/// `SELECT set_config('name', 'value', is_local)` calls with constant
/// arguments in a plain SELECT's target list.
unsafe fn set_config_calls(select: &pg_sys::SelectStmt) -> Vec<(String, String, bool)> {
    let mut calls = Vec::new();
    for target in PgList::<pg_sys::Node>::from_pg(select.targetList).iter_ptr() {
        if !is_a(target, NodeTag::T_ResTarget) {
            continue;
        }
        let value = (*(target as *mut pg_sys::ResTarget)).val;
        if value.is_null() || !is_a(value, NodeTag::T_FuncCall) {
            continue;
        }
        let call = &*(value as *mut pg_sys::FuncCall);
        let names: Vec<String> = PgList::<pg_sys::Node>::from_pg(call.funcname).iter_ptr().filter_map(|n| string_node(n)).collect();
        let is_set_config = match names.as_slice() {
            [name] => name == "set_config",
            [schema, name] => schema == "pg_catalog" && name == "set_config",
            _ => false,
        };
        if !is_set_config {
            continue;
        }
        let args: Vec<Option<String>> = PgList::<pg_sys::Node>::from_pg(call.args).iter_ptr().map(|a| constant(a)).collect();
        if let [Some(name), Some(value), Some(local)] = args.as_slice() {
            let local = matches!(local.to_lowercase().as_str(), "true" | "t" | "on" | "yes" | "1");
            calls.push((name.to_lowercase(), value.clone(), local));
        }
    }
    calls
}

unsafe fn string_node(node: *mut pg_sys::Node) -> Option<String> {
    (!node.is_null() && is_a(node, NodeTag::T_String))
        .then(|| CStr::from_ptr((*(node as *mut pg_sys::String)).sval).to_string_lossy().into_owned())
}

/// A literal's text: 'abc', 42, true (a TypeCast of a literal counts too).
unsafe fn constant(node: *mut pg_sys::Node) -> Option<String> {
    if node.is_null() {
        return None;
    }
    if is_a(node, NodeTag::T_TypeCast) {
        return constant((*(node as *mut pg_sys::TypeCast)).arg);
    }
    if !is_a(node, NodeTag::T_A_Const) {
        return None;
    }
    let constant = &*(node as *mut pg_sys::A_Const);
    if constant.isnull {
        return None;
    }
    let value = &constant.val as *const _ as *mut pg_sys::Node;
    if is_a(value, NodeTag::T_String) {
        return string_node(value);
    }
    if is_a(value, NodeTag::T_Integer) {
        return Some((*(value as *mut pg_sys::Integer)).ival.to_string());
    }
    if is_a(value, NodeTag::T_Boolean) {
        return Some((*(value as *mut pg_sys::Boolean)).boolval.to_string());
    }
    None
}
