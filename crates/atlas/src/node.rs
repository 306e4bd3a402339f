//! A JSON value with the path that leads to it, so a schema error can say
//! where it is (`$.etablissements[0].domaines[2].nom`) and what was
//! expected there.

use serde_json::{Map, Value};

use crate::model::Scalar;

/// A value with its JSON path.
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    pub value: &'a Value,
    pub path: &'a Path<'a>,
}

/// A JSON path, built as the reader walks down.
pub(crate) enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root => f.write_str("$"),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// What was found where something else was expected.
#[derive(Debug)]
pub(crate) struct Mismatch {
    pub path: String,
    pub expected: &'static str,
    pub found: &'static str,
}

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'a> Node<'a> {
    pub fn mismatch(&self, expected: &'static str) -> Mismatch {
        Mismatch {
            path: self.path.to_string(),
            expected,
            found: kind(self.value),
        }
    }

    /// The object this node is; anything else is a mismatch.
    pub fn object(&self) -> Result<&'a Map<String, Value>, Mismatch> {
        self.value
            .as_object()
            .ok_or_else(|| self.mismatch("an object"))
    }

    /// A field of this object: `None` when absent.
    pub fn get(&self, key: &str) -> Result<Option<&'a Value>, Mismatch> {
        Ok(self.object()?.get(key))
    }

    /// A scalar field: absent and `null` are `None`; an array or object
    /// is a mismatch.
    pub fn scalar(&self, key: &str) -> Result<Option<Scalar>, Mismatch> {
        let Some(value) = self.get(key)? else {
            return Ok(None);
        };
        match value {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(Scalar::Bool(*b))),
            Value::Number(n) => Ok(Some(Scalar::Number(n.clone()))),
            Value::String(s) => Ok(Some(Scalar::Text(s.clone()))),
            other => Err(Mismatch {
                path: format!("{}.{key}", self.path),
                expected: "text, a number or a boolean",
                found: kind(other),
            }),
        }
    }

    /// The first of `keys` that holds a truthy scalar (it-lanscape's
    /// `a.x || a.y || a.z`), else the last one's value.
    pub fn first_scalar(&self, keys: &[&str]) -> Result<Option<Scalar>, Mismatch> {
        let mut last = None;
        for key in keys {
            last = self.scalar(key)?;
            if last.as_ref().is_some_and(Scalar::truthy) {
                return Ok(last);
            }
        }
        Ok(last)
    }

    /// An optional boolean field (Mercator's `crypted`): text `"true"`/
    /// `"false"`, `0`/`1` and booleans are read; anything else is a
    /// mismatch.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, Mismatch> {
        Ok(match self.scalar(key)? {
            None => None,
            Some(Scalar::Bool(b)) => Some(b),
            Some(Scalar::Number(n)) if n.as_u64() == Some(0) => Some(false),
            Some(Scalar::Number(n)) if n.as_u64() == Some(1) => Some(true),
            Some(Scalar::Text(t)) => match t.trim().to_ascii_lowercase().as_str() {
                "true" | "oui" | "yes" | "1" => Some(true),
                "false" | "non" | "no" | "0" | "" => Some(false),
                _ => return Err(self.field_mismatch(key, "a boolean")),
            },
            Some(_) => return Err(self.field_mismatch(key, "a boolean")),
        })
    }

    fn field_mismatch(&self, key: &str, expected: &'static str) -> Mismatch {
        let found = self.value.get(key).map(kind).unwrap_or("nothing");
        Mismatch {
            path: format!("{}.{key}", self.path),
            expected,
            found,
        }
    }
}

/// Calls `each` with every element of the array at `key` of `node`, with
/// its path; an absent or `null` field is an empty array.
pub(crate) fn each<'a, T>(
    node: Node<'a>,
    key: &'a str,
    mut each: impl FnMut(Node<'_>) -> Result<T, Mismatch>,
) -> Result<Vec<T>, Mismatch> {
    let path = Path::Key(node.path, key);
    let items = match node.get(key)? {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(Mismatch {
                path: path.to_string(),
                expected: "an array",
                found: kind(other),
            })
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let path = Path::Index(&path, i);
            each(Node { value, path: &path })
        })
        .collect()
}
