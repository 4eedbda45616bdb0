//! Tool parameters as real clients send them: a name no tool knows is
//! refused (naming the closest known one) instead of being silently
//! dropped, repowire 0.17's names are accepted as aliases where ours differ,
//! and every input schema is written in the portable subset of JSON Schema
//! (one `type` per property, no integer `format`s) that the MCP Inspector's
//! `--strict` check and single-type dialects (Gemini's OpenAPI subset) take.
//!
//! The parameters themselves are declared in `args.rs`; the check here runs
//! before rmcp decodes them, in one place for every tool.

use crate::core::text::edit_distance;
use serde_json::{Map, Value};

/// repowire 0.17's parameter names that differ from ours: (tool, 0.17 name,
/// our name). A call using the 0.17 name works as if it used ours; the
/// schema's description of our parameter names the alias (and so does
/// docs/mcp-tools.md, generated from the schemas).
pub const ALIASES: &[(&str, &str, &str)] = &[
    ("job_create", "assigned_peer_id", "assigned_peer"),
    ("job_create", "owner_peer_id", "owner_peer"),
    ("job_list", "owner_peer_id", "owner"),
];

/// Rewrite aliases to our names and refuse any argument the tool does not
/// know. `schema` is the tool's input schema; the message names the bad
/// parameter, the closest known one, and what the tool takes.
pub fn check(
    tool: &str,
    schema: &Map<String, Value>,
    args: &mut Map<String, Value>,
) -> Result<(), String> {
    let known: Vec<&str> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let given: Vec<String> = args.keys().cloned().collect();
    for key in given {
        if known.contains(&key.as_str()) {
            continue;
        }
        if let Some((_, _, ours)) = ALIASES.iter().find(|(t, old, _)| *t == tool && *old == key) {
            if args.contains_key(*ours) {
                return Err(format!(
                    "{tool}: give either `{ours}` or its older name `{key}`, not both"
                ));
            }
            let v = args.remove(&key).unwrap_or(Value::Null);
            args.insert((*ours).to_string(), v);
            continue;
        }
        let shown: String = key.chars().take(64).collect();
        let mut msg = format!("{tool}: unknown parameter `{shown}`");
        if let Some(close) = closest(&key, &known) {
            msg.push_str(&format!(" (did you mean `{close}`?)"));
        }
        if known.is_empty() {
            msg.push_str("; it takes no parameters");
        } else {
            msg.push_str(&format!("; it takes: {}", known.join(", ")));
        }
        return Err(msg);
    }
    Ok(())
}

/// The known name nearest to `key` by edit distance, if it is near enough
/// to be a misspelling (at most a third of its letters, at least 2).
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&key, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.chars().count() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Make a tool's input schema portable and say what it accepts: an
/// optional property has one `type` (absent means "not given"; `null` is
/// still accepted), integer `format`s (`uint64`, `int64`, …, not JSON
/// Schema formats) are dropped (`minimum` stays), unknown properties are
/// declared refused (`additionalProperties: false`), and each aliased
/// parameter's description names its 0.17 alias.
pub fn portable(tool: &str, schema: &mut Map<String, Value>) {
    for v in schema.values_mut() {
        simplify(v);
    }
    if schema.get("type").and_then(Value::as_str) == Some("object") {
        schema.insert("additionalProperties".into(), Value::Bool(false));
    }
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (_, old, ours) in ALIASES.iter().filter(|(t, ..)| *t == tool) {
        if let Some(Value::Object(p)) = props.get_mut(*ours) {
            let d = p.get("description").and_then(Value::as_str).unwrap_or("");
            let d = format!("{d} Also accepted as `{old}` (repowire 0.17's name).");
            p.insert("description".into(), Value::String(d.trim().to_string()));
        }
    }
}

/// Recursively: `type: [X, "null"]` becomes `type: X`, a `default: null`
/// (meaningless without the null type) and integer formats go.
fn simplify(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Array(types)) = o.get("type") {
                let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                if rest.len() == 1 {
                    o.insert("type".into(), rest[0].clone());
                    if o.get("default") == Some(&Value::Null) {
                        o.remove("default");
                    }
                }
            }
            if o.get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with("int") || f.starts_with("uint"))
            {
                o.remove("format");
            }
            o.values_mut().for_each(simplify);
        }
        Value::Array(a) => a.iter_mut().for_each(simplify),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(props: &[&str]) -> Map<String, Value> {
        let p: Map<String, Value> = props.iter().map(|k| (k.to_string(), json!({}))).collect();
        json!({"type": "object", "properties": p})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn unknown_parameters_are_refused_with_the_closest_name() {
        let s = schema(&["peer_name", "message", "circle"]);
        let mut a = json!({"peer_name": "bob", "cirle": "ops"})
            .as_object()
            .unwrap()
            .clone();
        let e = check("notify_peer", &s, &mut a).unwrap_err();
        assert!(
            e.contains("`cirle`") && e.contains("did you mean `circle`"),
            "{e}"
        );
        // Nothing near: the known names are listed instead.
        let mut a = json!({"zzzzzzzz": 1}).as_object().unwrap().clone();
        let e = check("notify_peer", &s, &mut a).unwrap_err();
        assert!(
            !e.contains("did you mean") && e.contains("circle, message, peer_name"),
            "{e}"
        );
        let mut a = json!({"x": 1}).as_object().unwrap().clone();
        assert!(
            check("whoami", &schema(&[]), &mut a)
                .unwrap_err()
                .contains("no parameters")
        );
    }

    #[test]
    fn aliases_are_renamed_and_may_not_clash() {
        let s = schema(&["title", "assigned_peer", "owner_peer"]);
        let mut a = json!({"title": "t", "assigned_peer_id": "bob"})
            .as_object()
            .unwrap()
            .clone();
        check("job_create", &s, &mut a).unwrap();
        assert_eq!(
            Value::Object(a),
            json!({"title": "t", "assigned_peer": "bob"})
        );
        let mut a = json!({"owner_peer_id": "a", "owner_peer": "b"})
            .as_object()
            .unwrap()
            .clone();
        assert!(
            check("job_create", &s, &mut a)
                .unwrap_err()
                .contains("not both")
        );
        // An alias of another tool is no alias here.
        let mut a = json!({"owner_peer_id": "a"}).as_object().unwrap().clone();
        assert!(check("job_status", &schema(&["job_id"]), &mut a).is_err());
    }

    #[test]
    fn schemas_become_portable() {
        let mut s = json!({"type": "object", "properties": {
            "n": {"type": ["integer", "null"], "format": "uint64", "minimum": 0, "default": null},
            "tags": {"type": ["array", "null"], "items": {"type": "string"}},
            "owner": {"type": ["string", "null"], "description": "Who."}
        }})
        .as_object()
        .unwrap()
        .clone();
        portable("job_list", &mut s);
        assert_eq!(
            Value::Object(s),
            json!({"type": "object", "additionalProperties": false, "properties": {
                "n": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}},
                "owner": {"type": "string", "description": "Who. Also accepted as `owner_peer_id` (repowire 0.17's name)."}
            }})
        );
    }
}
