//! Reading the CIB into a small owned tree: the only module that touches the XML crate.
//!
//! Pacemaker lets an element stand for another of the same tag with `id-ref` (shared
//! `<operations>`, `<meta_attributes>`, rules). References are expanded here, so the
//! mapping code never sees them; the ones that point nowhere are reported back.

use std::collections::HashMap;

/// One XML element: its tag, attributes in document order and child elements.
/// Text and comments are dropped: the CIB keeps everything in attributes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Element {
    pub tag: String,
    attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
}

/// An `id-ref` that names no element of the same tag.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DanglingRef {
    pub tag: String,
    pub id_ref: String,
}

/// Expansion stops this deep, so a reference cycle cannot recurse forever.
const MAX_REF_DEPTH: usize = 8;

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The element's `id`, or an empty string (the CIB schema requires one almost
    /// everywhere, but an import must not fail for its absence).
    pub fn id(&self) -> &str {
        self.attr("id").unwrap_or_default()
    }

    pub fn attributes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attributes.iter().map(|(key, value)| (key.as_str(), value.as_str()))
    }

    pub fn child(&self, tag: &str) -> Option<&Element> {
        self.children.iter().find(|child| child.tag == tag)
    }

    pub fn children_named<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |child| child.tag == tag)
    }
}

/// Parses `text` and returns the root element with every resolvable `id-ref` expanded.
pub(crate) fn parse(text: &str) -> Result<(Element, Vec<DanglingRef>), String> {
    let document = roxmltree::Document::parse(text).map_err(|error| error.to_string())?;
    let mut by_id: HashMap<(&str, &str), roxmltree::Node<'_, '_>> = HashMap::new();
    for node in document.descendants().filter(roxmltree::Node::is_element) {
        if let Some(id) = node.attribute("id") {
            by_id.entry((node.tag_name().name(), id)).or_insert(node);
        }
    }
    let mut dangling = Vec::new();
    let root = convert(document.root_element(), &by_id, &mut dangling, 0);
    Ok((root, dangling))
}

fn convert<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    by_id: &HashMap<(&str, &str), roxmltree::Node<'a, 'input>>,
    dangling: &mut Vec<DanglingRef>,
    depth: usize,
) -> Element {
    let tag = node.tag_name().name();
    if let Some(id_ref) = node.attribute("id-ref") {
        match by_id.get(&(tag, id_ref)) {
            Some(target) if depth < MAX_REF_DEPTH => return convert(*target, by_id, dangling, depth + 1),
            _ => dangling.push(DanglingRef { tag: tag.to_string(), id_ref: id_ref.to_string() }),
        }
    }
    Element {
        tag: tag.to_string(),
        attributes: node.attributes().map(|attribute| (attribute.name().to_string(), attribute.value().to_string())).collect(),
        children: node.children().filter(roxmltree::Node::is_element).map(|child| convert(child, by_id, dangling, depth)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_refs_are_expanded_and_dangling_ones_reported() {
        let text = r#"<cib><configuration><resources>
            <primitive id="a"><operations id="ops"><op id="o1" name="monitor" interval="10"/></operations></primitive>
            <primitive id="b"><operations id-ref="ops"/></primitive>
            <primitive id="c"><operations id-ref="nowhere"/></primitive>
        </resources></configuration></cib>"#;
        let (root, dangling) = parse(text).expect("well-formed");
        let resources = root.child("configuration").and_then(|c| c.child("resources")).expect("resources");
        let b = resources.children.get(1).expect("b");
        let op = b.child("operations").and_then(|ops| ops.child("op")).expect("expanded op");
        assert_eq!(op.attr("interval"), Some("10"));
        assert_eq!(dangling, vec![DanglingRef { tag: "operations".into(), id_ref: "nowhere".into() }]);
    }

    #[test]
    fn malformed_text_is_an_error() {
        assert!(parse("<cib><configuration></cib>").is_err());
    }
}
