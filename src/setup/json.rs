//! JSON documents edited in place: objects keep their keys in file order,
//! so merging into a client's settings changes only what it must (the
//! workspace's `serde_json::Value` sorts keys, which would reorder a whole
//! `~/.claude.json`). Written back as clients write them: two-space
//! indentation, as `JSON.stringify(v, null, 2)` does.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::fmt;

/// A JSON value whose objects keep their order.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    pub fn obj() -> J {
        J::Obj(Vec::new())
    }

    /// An object with these entries, in this order.
    pub fn object<const N: usize>(entries: [(&str, J); N]) -> J {
        J::Obj(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    pub fn str(s: impl Into<String>) -> J {
        J::Str(s.into())
    }

    pub fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut J> {
        match self {
            J::Obj(m) => m.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            J::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_arr(&self) -> Option<&Vec<J>> {
        match self {
            J::Arr(a) => Some(a),
            _ => None,
        }
    }

    /// Set `key` (in place if present, else appended). `None` if `self` is
    /// not an object.
    pub fn set(&mut self, key: &str, v: J) -> Option<()> {
        let J::Obj(m) = self else { return None };
        match m.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = v,
            None => m.push((key.to_string(), v)),
        }
        Some(())
    }

    /// The object under `key`, created empty when missing. `None` if `self`
    /// is not an object or `key` holds something else.
    pub fn child_obj(&mut self, key: &str) -> Option<&mut J> {
        if self.get(key).is_none() {
            self.set(key, J::obj())?;
        }
        self.get_mut(key).filter(|v| matches!(v, J::Obj(_)))
    }

    pub fn remove(&mut self, key: &str) -> Option<J> {
        let J::Obj(m) = self else { return None };
        let i = m.iter().position(|(k, _)| k == key)?;
        Some(m.remove(i).1)
    }

    pub fn is_empty_container(&self) -> bool {
        match self {
            J::Obj(m) => m.is_empty(),
            J::Arr(a) => a.is_empty(),
            _ => false,
        }
    }

    pub fn parse(text: &str) -> Result<J, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Two-space indented, with a final newline.
    pub fn render(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

impl From<serde_json::Value> for J {
    fn from(v: serde_json::Value) -> J {
        use serde_json::Value as V;
        match v {
            V::Null => J::Null,
            V::Bool(b) => J::Bool(b),
            V::Number(n) => J::Num(n),
            V::String(s) => J::Str(s),
            V::Array(a) => J::Arr(a.into_iter().map(J::from).collect()),
            V::Object(o) => J::Obj(o.into_iter().map(|(k, v)| (k, J::from(v))).collect()),
        }
    }
}

impl Serialize for J {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::Null => s.serialize_unit(),
            J::Bool(b) => s.serialize_bool(*b),
            J::Num(n) => n.serialize(s),
            J::Str(v) => s.serialize_str(v),
            J::Arr(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            J::Obj(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<J, D::Error> {
        d.deserialize_any(JVisitor)
    }
}

struct JVisitor;

impl<'de> Visitor<'de> for JVisitor {
    type Value = J;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E>(self) -> Result<J, E> {
        Ok(J::Null)
    }
    fn visit_none<E>(self) -> Result<J, E> {
        Ok(J::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<J, E> {
        Ok(J::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<J, E> {
        Ok(J::Num(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<J, E> {
        Ok(J::Num(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<J, E> {
        serde_json::Number::from_f64(n)
            .map(J::Num)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }
    fn visit_str<E>(self, s: &str) -> Result<J, E> {
        Ok(J::Str(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<J, E> {
        Ok(J::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = a.next_element()? {
            v.push(x);
        }
        Ok(J::Arr(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
        let mut m: Vec<(String, J)> = Vec::new();
        while let Some((k, v)) = a.next_entry::<String, J>()? {
            // A repeated key: the last one wins, as in JSON.parse.
            match m.iter_mut().find(|(old, _)| *old == k) {
                Some((_, old)) => *old = v,
                None => m.push((k, v)),
            }
        }
        Ok(J::Obj(m))
    }
}

#[cfg(test)]
mod tests {
    use super::J;

    #[test]
    fn keys_keep_their_order_and_text_round_trips() {
        let text = "{\n  \"zeta\": 1,\n  \"alpha\": [\n    true,\n    null,\n    2.5\n  ],\n  \"mid\": {\n    \"b\": \"x\",\n    \"a\": {}\n  }\n}\n";
        let j = J::parse(text).unwrap();
        assert_eq!(j.render(), text);
        let mut j = j;
        j.set("new", J::Str("v".into())).unwrap();
        assert!(j.render().ends_with("\"new\": \"v\"\n}\n"));
    }
}
