//! Reading the CIB into a small tree: the only module that touches the XML crate.
//!
//! The tree borrows its tags and values from the text (no string of the document is
//! copied: a 1,000-node CIB holds millions of attributes), and the few values the
//! parser had to rewrite (entities, normalized whitespace) from `Unescaped`, so the
//! parsed `Document` can be freed before the tree is mapped (it is most of the peak
//! memory of an import).
//!
//! Pacemaker lets an element stand for another of the same tag with `id-ref` (shared
//! `<operations>`, `<meta_attributes>`, rules). References are expanded here, so the
//! mapping code never sees them; the ones that point nowhere are reported back.

use std::collections::HashMap;

/// A well-formed XML document, parsed; `tree` reads it as `Element`s.
pub(crate) struct Document<'input>(roxmltree::Document<'input>);

/// The attribute values of a `Document` that are not slices of its text, copied out
/// so the tree outlives the `Document`.
pub(crate) struct Unescaped {
    values: Vec<Box<str>>,
    /// Where each such value sits in `values`, by the address of the parser's copy.
    index: HashMap<*const u8, usize>,
    /// Whether some element has an `id-ref` (`tree` indexes elements by id only then).
    has_id_refs: bool,
}

/// One XML element: its tag, attributes in document order and child elements, all
/// borrowed from the `Document`. Text and comments are dropped: the CIB keeps
/// everything in attributes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Element<'a> {
    pub tag: &'a str,
    attributes: Vec<(&'a str, &'a str)>,
    pub children: Vec<Element<'a>>,
}

/// An `id-ref` that names no element of the same tag.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DanglingRef {
    pub tag: String,
    pub id_ref: String,
}

/// Expansion stops this deep, so a reference cycle cannot recurse forever.
const MAX_REF_DEPTH: usize = 8;

/// The most elements a document may expand to: references to references can grow a
/// small document exponentially.
const MAX_ELEMENTS: usize = 1_000_000;

/// The deepest element nesting read (a CIB is a dozen levels deep; this bounds the
/// recursion).
const MAX_NESTING: usize = 256;

/// What is left of the expansion limits while converting one document.
struct Budget {
    elements_left: usize,
}

impl<'a> Element<'a> {
    pub fn attr(&self, name: &str) -> Option<&'a str> {
        self.attributes.iter().find(|(key, _)| *key == name).map(|(_, value)| *value)
    }

    /// The element's `id`, or an empty string (the CIB schema requires one almost
    /// everywhere, but an import must not fail for its absence).
    pub fn id(&self) -> &'a str {
        self.attr("id").unwrap_or_default()
    }

    pub fn attributes(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.attributes.iter().copied()
    }

    pub fn child(&self, tag: &str) -> Option<&Element<'a>> {
        self.children.iter().find(|child| child.tag == tag)
    }

    pub fn children_named<'s>(&'s self, tag: &'s str) -> impl Iterator<Item = &'s Element<'a>> + 's {
        self.children.iter().filter(move |child| child.tag == tag)
    }
}

impl<'input> Document<'input> {
    /// Parses `text`; an error when it is not well-formed XML.
    pub fn parse(text: &'input str) -> Result<Document<'input>, String> {
        roxmltree::Document::parse(text).map(Document).map_err(|error| error.to_string())
    }

    /// The attribute values that are not slices of the text, for `tree`.
    pub fn unescaped(&self) -> Unescaped {
        let mut unescaped = Unescaped { values: Vec::new(), index: HashMap::new(), has_id_refs: false };
        for node in self.0.descendants().filter(roxmltree::Node::is_element) {
            for attribute in node.attributes() {
                unescaped.has_id_refs |= attribute.name() == "id-ref";
                if let roxmltree::StringStorage::Owned(value) = attribute.value_storage() {
                    unescaped.index.entry(value.as_ptr()).or_insert_with(|| {
                        unescaped.values.push(Box::from(&**value));
                        unescaped.values.len() - 1
                    });
                }
            }
        }
        unescaped
    }

    /// The root element with every resolvable `id-ref` expanded, and the references
    /// that name nothing; it borrows the text and `unescaped` (made by `unescaped`),
    /// not the `Document`.
    pub fn tree<'a>(&self, unescaped: &'a Unescaped) -> Result<(Element<'a>, Vec<DanglingRef>), String>
    where
        'input: 'a,
    {
        let document = &self.0;
        let mut by_id: HashMap<(&str, &str), roxmltree::Node<'_, '_>> = HashMap::new();
        // Elements by id only for a document that refers to some (most refer to none).
        for node in document.descendants().filter(roxmltree::Node::is_element).take(if unescaped.has_id_refs { usize::MAX } else { 0 }) {
            if let Some(id) = node.attribute("id") {
                by_id.entry((node.tag_name().name(), id)).or_insert(node);
            }
        }
        let mut dangling = Vec::new();
        let mut budget = Budget { elements_left: MAX_ELEMENTS };
        let root = convert(document.root_element(), &by_id, unescaped, &mut dangling, &mut budget, 0, 0)?;
        Ok((root, dangling))
    }
}

fn convert<'a, 'd, 'input: 'a + 'd>(
    node: roxmltree::Node<'d, 'input>,
    by_id: &HashMap<(&str, &str), roxmltree::Node<'d, 'input>>,
    unescaped: &'a Unescaped,
    dangling: &mut Vec<DanglingRef>,
    budget: &mut Budget,
    depth: usize,
    nesting: usize,
) -> Result<Element<'a>, String> {
    if nesting > MAX_NESTING {
        return Err(format!("elements are nested more than {MAX_NESTING} deep"));
    }
    budget.elements_left = budget.elements_left.checked_sub(1).ok_or_else(|| format!("the document expands to more than {MAX_ELEMENTS} elements (id-ref)"))?;
    let tag = node.tag_name().name();
    if let Some(id_ref) = node.attribute("id-ref") {
        match by_id.get(&(tag, id_ref)) {
            Some(target) if depth < MAX_REF_DEPTH => return convert(*target, by_id, unescaped, dangling, budget, depth + 1, nesting),
            _ => dangling.push(DanglingRef { tag: tag.to_string(), id_ref: id_ref.to_string() }),
        }
    }
    let mut children = Vec::new();
    for child in node.children().filter(roxmltree::Node::is_element) {
        children.push(convert(child, by_id, unescaped, dangling, budget, depth, nesting + 1)?);
    }
    let attributes = node.attributes().map(|attribute| (attribute.name(), value_of(&attribute, unescaped))).collect();
    Ok(Element { tag, attributes, children })
}

/// An attribute's value as a slice of the text, or of `unescaped` when the parser
/// rewrote it.
fn value_of<'a, 'input: 'a>(attribute: &roxmltree::Attribute<'_, 'input>, unescaped: &'a Unescaped) -> &'a str {
    match attribute.value_storage() {
        roxmltree::StringStorage::Borrowed(value) => value,
        roxmltree::StringStorage::Owned(value) => unescaped.index.get(&value.as_ptr()).and_then(|&at| unescaped.values.get(at)).map_or("", |value| &**value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses and reads `text` as `import` does, into owned results for the asserts.
    fn parse_and<T>(text: &str, check: impl FnOnce(Result<(Element<'_>, Vec<DanglingRef>), String>) -> T) -> T {
        match Document::parse(text) {
            Ok(document) => check(document.tree(&document.unescaped())),
            Err(error) => check(Err(error)),
        }
    }

    fn parse(text: &str) -> Result<(), String> {
        parse_and(text, |result| result.map(|_| ()))
    }

    #[test]
    fn expansion_and_nesting_are_bounded() {
        // Eight levels, each holding twenty references to the level below: 20^8
        // elements if expanded blindly.
        let mut levels = String::from(r#"<meta_attributes id="l0"><nvpair id="n" name="a" value="b"/></meta_attributes>"#);
        for level in 1..8 {
            let refs: String = (0..20).map(|_| format!(r#"<meta_attributes id-ref="l{}"/>"#, level - 1)).collect();
            levels.push_str(&format!(r#"<meta_attributes id="l{level}">{refs}</meta_attributes>"#));
        }
        let top: String = (0..20).map(|_| r#"<meta_attributes id-ref="l7"/>"#.to_string()).collect();
        let text = format!("<cib><configuration>{levels}{top}</configuration></cib>");
        let error = parse(&text).expect_err("exponential expansion");
        assert!(error.contains("more than 1000000 elements"), "{error}");

        let deep = format!("<cib><configuration>{}{}</configuration></cib>", "<a>".repeat(1000), "</a>".repeat(1000));
        let error = parse(&deep).expect_err("deep nesting");
        assert!(error.contains("nested more than 256"), "{error}");
    }

    #[test]
    fn id_refs_are_expanded_and_dangling_ones_reported() {
        let text = r#"<cib><configuration><resources>
            <primitive id="a"><operations id="ops"><op id="o1" name="monitor" interval="10"/></operations></primitive>
            <primitive id="b"><operations id-ref="ops"/></primitive>
            <primitive id="c"><operations id-ref="nowhere"/></primitive>
        </resources></configuration></cib>"#;
        parse_and(text, |result| {
            let (root, dangling) = result.expect("well-formed");
            let resources = root.child("configuration").and_then(|c| c.child("resources")).expect("resources");
            let b = resources.children.get(1).expect("b");
            let op = b.child("operations").and_then(|ops| ops.child("op")).expect("expanded op");
            assert_eq!(op.attr("interval"), Some("10"));
            assert_eq!(dangling, vec![DanglingRef { tag: "operations".into(), id_ref: "nowhere".into() }]);
        });
    }

    #[test]
    fn malformed_text_is_an_error() {
        assert!(parse("<cib><configuration></cib>").is_err());
    }
}
