//! Rule expressions over node attributes (`#uname`, `#id`, anything an admin or an
//! agent set), evaluated the way Pacemaker evaluates them.

use std::cmp::Ordering;

use crate::api::constraint::{Expression, ExpressionOperation, ExpressionType};

use super::model::Node;

/// Whether `expression` holds on `node`.
pub(crate) fn evaluate(expression: &Expression, node: &Node) -> bool {
    if let Some(all) = &expression.and {
        return all.iter().all(|inner| evaluate(inner, node));
    }
    if let Some(any) = &expression.or {
        return any.iter().any(|inner| evaluate(inner, node));
    }
    if let Some(inner) = &expression.not {
        return !evaluate(inner, node);
    }
    let Some(attribute) = expression.attribute.as_deref() else {
        // An empty expression constrains nothing.
        return true;
    };
    let actual = node.attribute(attribute);
    let operation = expression.operation.unwrap_or(ExpressionOperation::Eq);
    match operation {
        ExpressionOperation::Defined => return actual.is_some(),
        ExpressionOperation::NotDefined => return actual.is_none(),
        _ => {}
    }
    let expected = expression.value.as_ref().map(|value| value.as_str());
    let (Some(actual), Some(expected)) = (actual, expected) else {
        // Pacemaker: a missing attribute only satisfies `ne`.
        return operation == ExpressionOperation::Ne;
    };
    let value_type = expression.value_type.unwrap_or_else(|| default_type(operation, actual, expected));
    let ordering = compare(value_type, actual, expected);
    match operation {
        ExpressionOperation::Eq => ordering == Some(Ordering::Equal),
        ExpressionOperation::Ne => ordering != Some(Ordering::Equal),
        ExpressionOperation::Lt => ordering == Some(Ordering::Less),
        ExpressionOperation::Lte => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        ExpressionOperation::Gt => ordering == Some(Ordering::Greater),
        ExpressionOperation::Gte => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        ExpressionOperation::Defined | ExpressionOperation::NotDefined => false,
    }
}

/// Without an explicit type, ordering comparisons are numeric (integer unless a value
/// has a decimal point) and equality compares strings.
fn default_type(operation: ExpressionOperation, actual: &str, expected: &str) -> ExpressionType {
    match operation {
        ExpressionOperation::Lt | ExpressionOperation::Lte | ExpressionOperation::Gt | ExpressionOperation::Gte => {
            if actual.contains('.') || expected.contains('.') { ExpressionType::Number } else { ExpressionType::Integer }
        }
        _ => ExpressionType::String,
    }
}

/// Compares two values as `value_type`; None when they cannot be compared as such.
fn compare(value_type: ExpressionType, actual: &str, expected: &str) -> Option<Ordering> {
    match value_type {
        ExpressionType::String => Some(actual.to_lowercase().cmp(&expected.to_lowercase())),
        ExpressionType::Integer => {
            let left = parse_integer(actual)?;
            let right = parse_integer(expected)?;
            Some(left.cmp(&right))
        }
        ExpressionType::Number => {
            let left: f64 = actual.trim().parse().ok()?;
            let right: f64 = expected.trim().parse().ok()?;
            left.partial_cmp(&right)
        }
        ExpressionType::Version => Some(compare_versions(actual, expected)),
    }
}

/// Integers as Pacemaker reads them: a leading number, ignoring what follows.
fn parse_integer(text: &str) -> Option<i64> {
    let text = text.trim();
    let end = text.char_indices().find(|&(index, c)| !(c.is_ascii_digit() || (index == 0 && (c == '-' || c == '+')))).map_or(text.len(), |(index, _)| index);
    text[..end].parse().ok()
}

/// Dotted version comparison: numeric component by component, missing ones are 0.
fn compare_versions(left: &str, right: &str) -> Ordering {
    let parts = |text: &str| -> Vec<i64> { text.split('.').map(|part| parse_integer(part).unwrap_or(0)).collect() };
    let (left, right) = (parts(left), parts(right));
    for index in 0..left.len().max(right.len()) {
        let ordering = left.get(index).unwrap_or(&0).cmp(right.get(index).unwrap_or(&0));
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ParamValue;

    fn node(attributes: &[(&str, &str)]) -> Node {
        Node {
            name: "n1".into(),
            attributes: attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            online: true,
            unclean: false,
            standby: false,
            pending: false,
            maintenance: false,
            shutdown: false,
            unclean_reason: None,
            capacity: Default::default(),
            health: crate::api::Score::ZERO,
        }
    }

    fn expr(attribute: &str, operation: ExpressionOperation, value: Option<&str>) -> Expression {
        Expression { attribute: Some(attribute.into()), operation: Some(operation), value: value.map(|v| ParamValue(v.into())), ..Expression::default() }
    }

    #[test]
    fn comparisons_follow_pacemaker_defaults() {
        let n = node(&[("#uname", "node1"), ("memory", "2048"), ("ver", "1.10")]);
        assert!(evaluate(&expr("#uname", ExpressionOperation::Eq, Some("NODE1")), &n));
        assert!(evaluate(&expr("memory", ExpressionOperation::Gt, Some("512")), &n));
        // As strings "2048" < "512"; the default type for gt is integer.
        assert!(!evaluate(&expr("memory", ExpressionOperation::Lt, Some("512")), &n));
        assert!(evaluate(&expr("missing", ExpressionOperation::Ne, Some("x")), &n));
        assert!(!evaluate(&expr("missing", ExpressionOperation::Eq, Some("x")), &n));
        assert!(evaluate(&expr("missing", ExpressionOperation::NotDefined, None), &n));
        let mut version = expr("ver", ExpressionOperation::Gt, Some("1.9"));
        version.value_type = Some(ExpressionType::Version);
        assert!(evaluate(&version, &n));
        let both = Expression { and: Some(vec![expr("memory", ExpressionOperation::Defined, None), version.clone()]), ..Expression::default() };
        assert!(evaluate(&both, &n));
        let negated = Expression { not: Some(Box::new(both)), ..Expression::default() };
        assert!(!evaluate(&negated, &n));
    }
}
