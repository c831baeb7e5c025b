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
pub(crate) struct Document<'input>(Parsed<'input>);

/// Who read the document: the fast reader (the tree as read, its values raw), or
/// roxmltree.
enum Parsed<'input> {
    Fast { root: Element<'input>, unescaped: Option<Unescaped> },
    Xml(roxmltree::Document<'input>),
}

/// The attribute values of a `Document` that are not slices of its text, copied out
/// so the tree outlives the `Document`.
#[derive(Default)]
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

impl Budget {
    /// One more element, `nesting` deep: refused past either limit.
    fn enter(&mut self, nesting: usize) -> Result<(), String> {
        if nesting > MAX_NESTING {
            return Err(format!("elements are nested more than {MAX_NESTING} deep"));
        }
        self.elements_left = self.elements_left.checked_sub(1).ok_or_else(|| format!("the document expands to more than {MAX_ELEMENTS} elements (id-ref)"))?;
        Ok(())
    }
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
    /// Parses `text`; an error when it is not well-formed XML. The fast reader reads
    /// the XML a CIB is written in; anything else, and every error, is roxmltree's.
    pub fn parse(text: &'input str) -> Result<Document<'input>, String> {
        if let Ok((root, unescaped)) = read_fast(text) {
            return Ok(Document(Parsed::Fast { root, unescaped: Some(unescaped) }));
        }
        roxmltree::Document::parse(text).map(|document| Document(Parsed::Xml(document))).map_err(|error| error.to_string())
    }

    /// The attribute values that are not slices of the text, for `tree` (taken once).
    pub fn unescaped(&mut self) -> Unescaped {
        let document = match &mut self.0 {
            Parsed::Fast { unescaped, .. } => return unescaped.take().unwrap_or_default(),
            Parsed::Xml(document) => document,
        };
        let mut unescaped = Unescaped::default();
        for node in document.descendants().filter(roxmltree::Node::is_element) {
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
    /// not the `Document`, which it consumes.
    pub fn tree<'a>(self, unescaped: &'a Unescaped) -> Result<(Element<'a>, Vec<DanglingRef>), String>
    where
        'input: 'a,
    {
        let document = match self.0 {
            // Nothing to rewrite or expand: the tree as read.
            Parsed::Fast { root, .. } if unescaped.values.is_empty() && !unescaped.has_id_refs => return Ok((root, Vec::new())),
            Parsed::Fast { root, .. } => return expand_read(&root, unescaped),
            Parsed::Xml(document) => document,
        };
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

/// The tree the fast reader made, with its rewritten values in place and its `id-ref`s
/// expanded as `convert` expands roxmltree's.
fn expand_read<'a, 'input: 'a>(root: &Element<'input>, unescaped: &'a Unescaped) -> Result<(Element<'a>, Vec<DanglingRef>), String> {
    let mut by_id: HashMap<(&str, &str), &Element<'input>> = HashMap::new();
    if unescaped.has_id_refs {
        // Document order, the first of an id winning, as `tree` indexes roxmltree's.
        let mut pending = vec![root];
        while let Some(element) = pending.pop() {
            if let Some(id) = element.attr("id") {
                by_id.entry((element.tag, unescaped.value(id))).or_insert(element);
            }
            pending.extend(element.children.iter().rev());
        }
    }
    let mut dangling = Vec::new();
    let mut budget = Budget { elements_left: MAX_ELEMENTS };
    let root = expand_element(root, &by_id, unescaped, &mut dangling, &mut budget, 0, 0)?;
    Ok((root, dangling))
}

fn expand_element<'a, 'input: 'a>(
    element: &Element<'input>,
    by_id: &HashMap<(&str, &str), &Element<'input>>,
    unescaped: &'a Unescaped,
    dangling: &mut Vec<DanglingRef>,
    budget: &mut Budget,
    depth: usize,
    nesting: usize,
) -> Result<Element<'a>, String> {
    budget.enter(nesting)?;
    if let Some(id_ref) = element.attr("id-ref").map(|raw| unescaped.value(raw)) {
        match by_id.get(&(element.tag, id_ref)) {
            Some(target) if depth < MAX_REF_DEPTH => return expand_element(target, by_id, unescaped, dangling, budget, depth + 1, nesting),
            _ => dangling.push(DanglingRef { tag: element.tag.to_string(), id_ref: id_ref.to_string() }),
        }
    }
    let mut children = Vec::with_capacity(element.children.len());
    for child in &element.children {
        children.push(expand_element(child, by_id, unescaped, dangling, budget, depth, nesting + 1)?);
    }
    let attributes = element.attributes.iter().map(|&(name, raw)| (name, unescaped.value(raw))).collect();
    Ok(Element { tag: element.tag, attributes, children })
}

impl Unescaped {
    /// A value as read: `raw`, a slice of the text, or what it was rewritten to.
    fn value<'a>(&'a self, raw: &'a str) -> &'a str {
        match self.index.get(&raw.as_ptr()) {
            Some(&at) if !raw.is_empty() => self.values.get(at).map_or("", |value| &**value),
            _ => raw,
        }
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
    budget.enter(nesting)?;
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

/// The most attributes the fast reader reads on one element (a history entry has
/// about twenty).
const MAX_FAST_ATTRIBUTES: usize = 64;

/// Why the fast reader handed a document to roxmltree: a construct it does not read
/// (a DTD, namespaces, CDATA, a name outside ASCII, a reference in text), or a
/// document that is not well-formed (roxmltree then says where).
struct Unsupported;

/// Reads the XML a CIB is written in straight into the tree: elements, attributes in
/// single or double quotes with the predefined and character references, comments,
/// processing instructions and whitespace. Anything else is `Unsupported`, so what it
/// accepts roxmltree accepts too, and reads the same way (a test compares them).
/// The values it had to rewrite are in the returned `Unescaped`, by the address of
/// their text.
fn read_fast(text: &str) -> Result<(Element<'_>, Unescaped), Unsupported> {
    // U+FFFE and U+FFFF are no XML characters (the others outside XML's range are
    // controls, refused below, or cannot be in a `str`). Both are encoded after the
    // byte 0xEF, which a CIB in ASCII does not hold: one vectorized byte search
    // usually settles it (a search per character, or decoding every character, was
    // up to 30% of the reading in issue 19).
    if memchr::memchr(0xef, text.as_bytes()).is_some() && (text.contains('\u{fffe}') || text.contains('\u{ffff}')) {
        return Err(Unsupported);
    }
    let bytes = text.as_bytes();
    let mut unescaped = Unescaped { values: Vec::new(), index: HashMap::new(), has_id_refs: false };
    let mut pos = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut stack: Vec<Element<'_>> = Vec::new();
    // The children of the open elements, in document order: an element's are the
    // ones from where it opened (`children_from`) on, moved into a vector of their
    // exact size when it ends — no vector grown child by child (a node's status has
    // thousands).
    let mut finished: Vec<Element<'_>> = Vec::new();
    let mut children_from: Vec<usize> = Vec::new();
    let mut root: Option<Element<'_>> = None;
    // One element's attributes, with the key of each name for the duplicate check.
    let mut attributes: Vec<(&str, &str)> = Vec::new();
    let mut names_by_tag: foldhash::HashMap<&str, Vec<&str>> = foldhash::HashMap::default();
    let mut elements = 0usize;
    loop {
        // Text up to the next tag: whitespace outside the root, no reference, no `>`
        // (`]]>` is not allowed there) and no control character.
        loop {
            // Indentation, eight spaces at a time.
            pos += space_run(bytes, pos);
            match bytes.get(pos) {
                None | Some(b'<') => break,
                Some(b'\t' | b'\n' | b'\r') => {}
                Some(b'&' | b'>') => return Err(Unsupported),
                Some(&byte) if byte < 0x20 || stack.is_empty() => return Err(Unsupported),
                Some(_) => {}
            }
            pos += 1;
        }
        if pos >= bytes.len() {
            break;
        }
        match bytes.get(pos + 1) {
            Some(b'/') => {
                let mut element = stack.pop().ok_or(Unsupported)?;
                // The end tag names the element that is open: its tag was read as a
                // name already, so the same bytes followed by no name byte are the same
                // name (anything else is roxmltree's to report).
                let after = pos + 2 + element.tag.len();
                if bytes.get(pos + 2..after) != Some(element.tag.as_bytes()) || bytes.get(after).is_some_and(|&byte| continues_name(byte)) {
                    return Err(Unsupported);
                }
                pos = skip_whitespace(bytes, after);
                if bytes.get(pos) != Some(&b'>') {
                    return Err(Unsupported);
                }
                pos += 1;
                let from = children_from.pop().ok_or(Unsupported)?;
                element.children = finished.drain(from..).collect();
                attach(element, &stack, &mut finished, &mut root)?;
            }
            Some(b'!') => {
                // A comment (CDATA and DTDs are left to roxmltree).
                if !text[pos..].starts_with("<!--") {
                    return Err(Unsupported);
                }
                let end = text[pos + 4..].find("-->").ok_or(Unsupported)? + pos + 4;
                let comment = &text[pos + 4..end];
                if comment.contains("--") || comment.ends_with('-') || comment.bytes().any(is_control) {
                    return Err(Unsupported);
                }
                pos = end + 3;
            }
            Some(b'?') => {
                let end = text[pos + 2..].find("?>").ok_or(Unsupported)? + pos + 2;
                let instruction = &text[pos + 2..end];
                let target = instruction.split(|c: char| c.is_ascii_whitespace()).next().unwrap_or_default();
                if target.eq_ignore_ascii_case("xml") {
                    // The declaration, first in the document, in UTF-8 (the text is).
                    let first = pos == 0 || (pos == 3 && text.starts_with('\u{feff}'));
                    if !first || !plain_declaration(instruction) {
                        return Err(Unsupported);
                    }
                } else if target.is_empty() || !is_plain_name(target) || instruction.bytes().any(is_control) {
                    return Err(Unsupported);
                }
                pos = end + 2;
            }
            _ => {
                // Siblings mostly share a tag (history entries, nvpairs): the previous
                // one's, already checked, is recognized by its bytes.
                let sibling_tag = children_from.last().filter(|&&from| finished.len() > from).and_then(|_| finished.last()).map(|sibling| sibling.tag);
                let (tag, mut at) = match sibling_tag.filter(|tag| names_at(bytes, pos + 1, tag)) {
                    Some(tag) => (tag, pos + 1 + tag.len()),
                    None => read_name(text, pos + 1)?,
                };
                attributes.clear();
                let mut seen: u64 = 0;
                // The names the last element of this tag had, in order: while they
                // come again (a machine writes every history entry alike), each is
                // recognized by comparing its bytes, not read and checked byte by
                // byte, and cannot repeat an earlier one.
                let expected = names_by_tag.get(tag).map(Vec::as_slice).unwrap_or_default();
                let mut as_expected = true;
                let open = loop {
                    // Usually one space before an attribute.
                    let after = if bytes.get(at) == Some(&b' ') && !matches!(bytes.get(at + 1), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                        at + 1
                    } else {
                        skip_whitespace(bytes, at)
                    };
                    match bytes.get(after) {
                        Some(b'>') => break (true, after + 1),
                        Some(b'/') if bytes.get(after + 1) == Some(&b'>') => break (false, after + 2),
                        Some(_) if after > at => {}
                        _ => return Err(Unsupported),
                    }
                    // An element with very many attributes is roxmltree's: the
                    // duplicate check below would grow with their square.
                    if attributes.len() >= MAX_FAST_ATTRIBUTES {
                        return Err(Unsupported);
                    }
                    let known = expected.get(attributes.len()).filter(|&&name| {
                        as_expected
                            && bytes.get(after..after + name.len()).is_some_and(|candidate| same_bytes(candidate, name.as_bytes()))
                            && bytes.get(after + name.len()) == Some(&b'=')
                    });
                    if as_expected && known.is_none() {
                        // From here on each name is checked against all before it.
                        as_expected = false;
                        seen = attributes.iter().fold(0, |seen, &(name, _)| seen | 1u64 << (name_hash(name) & 63));
                    }
                    let (name, after_name) = match known {
                        Some(&name) => (name, after + name.len()),
                        None => read_name(text, after)?,
                    };
                    let equals = if bytes.get(after_name) == Some(&b'=') { after_name } else { skip_whitespace(bytes, after_name) };
                    if bytes.get(equals) != Some(&b'=') {
                        return Err(Unsupported);
                    }
                    let quote_at = if matches!(bytes.get(equals + 1), Some(b'"' | b'\'')) { equals + 1 } else { skip_whitespace(bytes, equals + 1) };
                    let quote = match bytes.get(quote_at) {
                        Some(&quote @ (b'"' | b'\'')) => quote,
                        _ => return Err(Unsupported),
                    };
                    let start = quote_at + 1;
                    let (end, rewrite) = value_end(bytes, start, quote)?;
                    let value = &text[start..end];
                    at = end + 1;
                    // `xmlns` declares a namespace: roxmltree's to read.
                    if name == "xmlns" {
                        return Err(Unsupported);
                    }
                    // A name seen twice is not well-formed; the bit filter keeps the
                    // check linear for the dozen or more attributes of a history entry.
                    if !as_expected {
                        let bit = 1u64 << (name_hash(name) & 63);
                        if seen & bit != 0 && attributes.iter().any(|(other, _)| *other == name) {
                            return Err(Unsupported);
                        }
                        seen |= bit;
                    }
                    unescaped.has_id_refs |= name == "id-ref";
                    if rewrite {
                        let decoded = decode_value(value).ok_or(Unsupported)?;
                        unescaped.index.insert(value.as_ptr(), unescaped.values.len());
                        unescaped.values.push(decoded.into_boxed_str());
                    }
                    attributes.push((name, value));
                };
                let (open, after) = open;
                if !as_expected || attributes.len() != expected.len() {
                    names_by_tag.insert(tag, attributes.iter().map(|&(name, _)| name).collect());
                }
                pos = after;
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(Unsupported);
                }
                let element = Element { tag, attributes: attributes.to_vec(), children: Vec::new() };
                if open {
                    if stack.len() >= MAX_NESTING {
                        return Err(Unsupported);
                    }
                    stack.push(element);
                    children_from.push(finished.len());
                } else {
                    attach(element, &stack, &mut finished, &mut root)?;
                }
            }
        }
    }
    match (root, stack.is_empty()) {
        (Some(root), true) => Ok((root, unescaped)),
        _ => Err(Unsupported),
    }
}

/// An element that ended goes to its parent's children (`finished`, while the parent
/// is open), or is the root (only one).
fn attach<'a>(element: Element<'a>, stack: &[Element<'a>], finished: &mut Vec<Element<'a>>, root: &mut Option<Element<'a>>) -> Result<(), Unsupported> {
    match stack.last() {
        Some(_) => finished.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err(Unsupported),
    }
    Ok(())
}

/// An XML declaration as written in the usual form: `xml version="1.x"`, then
/// optionally `encoding="UTF-8"` and `standalone="yes|no"`, in that order, each after
/// whitespace, in either quotes. Anything else is left to roxmltree.
fn plain_declaration(instruction: &str) -> bool {
    /// The pseudo-attribute `name` after whitespace at the start of `rest`: whether its
    /// value is valid (and `rest` moved past it), or `None` if it is not there.
    fn pseudo(rest: &mut &str, name: &str, valid: fn(&str) -> bool) -> Option<bool> {
        let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r']);
        if trimmed.len() == rest.len() {
            return None;
        }
        let after = trimmed.strip_prefix(name)?.strip_prefix('=')?;
        let quote = after.chars().next().filter(|quote| *quote == '"' || *quote == '\'')?;
        let (value, tail) = after[1..].split_once(quote)?;
        *rest = tail;
        Some(valid(value))
    }
    let Some(mut rest) = instruction.strip_prefix("xml") else { return false };
    let version: fn(&str) -> bool = |value| value.strip_prefix("1.").is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|byte| byte.is_ascii_digit()));
    if pseudo(&mut rest, "version", version) != Some(true) {
        return false;
    }
    let encoding: fn(&str) -> bool = |value| value.eq_ignore_ascii_case("utf-8");
    let standalone: fn(&str) -> bool = |value| value == "yes" || value == "no";
    for (name, valid) in [("encoding", encoding), ("standalone", standalone)] {
        if pseudo(&mut rest, name, valid) == Some(false) {
            return false;
        }
    }
    rest.trim_start_matches([' ', '\t', '\n', '\r']).is_empty()
}

fn is_control(byte: u8) -> bool {
    byte < 0x20 && !matches!(byte, b'\t' | b'\n' | b'\r')
}

/// An ASCII name without a namespace prefix (`[A-Za-z_][A-Za-z0-9._-]*`).
fn is_plain_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// The plain name at `at`, and where it ends.
fn read_name(text: &str, at: usize) -> Result<(&str, usize), Unsupported> {
    let bytes = text.as_bytes();
    match bytes.get(at) {
        Some(first) if first.is_ascii_alphabetic() || *first == b'_' => {}
        _ => return Err(Unsupported),
    }
    let mut end = at + 1;
    end += name_run(bytes, end);
    if let Some(byte) = bytes.get(end) {
        if *byte >= 0x80 || *byte == b':' {
            // Names outside ASCII, and namespace prefixes, are roxmltree's.
            return Err(Unsupported);
        }
    }
    Ok((&text[at..end], end))
}

/// Whether the name at `at` is `name`, a name read before: the same bytes, not
/// followed by a byte that would continue it.
fn names_at(bytes: &[u8], at: usize, name: &str) -> bool {
    let end = at + name.len();
    bytes.get(at..end).is_some_and(|candidate| same_bytes(candidate, name.as_bytes())) && bytes.get(end).is_some_and(|&byte| !continues_name(byte))
}

/// Whether `byte`, after a name, would continue it: a name byte, or one the fast reader
/// leaves to roxmltree (outside ASCII, a namespace prefix's `:`).
fn continues_name(byte: u8) -> bool {
    NAME_PLAIN[usize::from(byte)] || byte >= 0x80 || byte == b':'
}

/// The bytes of a name after its first: `[A-Za-z0-9._-]`.
const NAME_PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = (byte as u8).is_ascii_alphanumeric() || matches!(byte as u8, b'.' | b'_' | b'-');
        byte += 1;
    }
    table
};

/// How many bytes from `at` on are name bytes (`NAME_PLAIN`), eight looked up at a
/// time into one word without a branch each (a byte at a time cost a branch per byte).
fn name_run(bytes: &[u8], at: usize) -> usize {
    let rest = bytes.get(at..).unwrap_or_default();
    let mut done = 0;
    while let Some(chunk) = rest.get(done..done + 8).and_then(|chunk| <&[u8; 8]>::try_from(chunk).ok()) {
        // One bit a byte, at the byte's place: set for a name byte.
        let plain = chunk.iter().rev().fold(0u64, |word, &byte| (word << 8) | u64::from(NAME_PLAIN[usize::from(byte)]));
        let stops = !plain & splat(1);
        if stops != 0 {
            return done + (stops.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    let tail = rest.get(done..).unwrap_or_default();
    done + tail.iter().position(|&byte| !NAME_PLAIN[usize::from(byte)]).unwrap_or(tail.len())
}

/// Where the attribute value starting at `start` ends (at its `quote`), and whether
/// it must be rewritten (a reference, a tab or a line end in it). `<`, the end of the
/// text and other control characters are `Unsupported`.
fn value_end(bytes: &[u8], start: usize, quote: u8) -> Result<(usize, bool), Unsupported> {
    let mut end = start;
    let mut rewrite = false;
    loop {
        end += value_run(bytes, end, quote);
        match bytes.get(end) {
            Some(&byte) if byte == quote => return Ok((end, rewrite)),
            Some(b'&' | b'\t' | b'\n' | b'\r') => rewrite = true,
            _ => return Err(Unsupported),
        }
        end += 1;
    }
}

/// Whether two byte strings of the same length are equal, compared a word or two at
/// a time when short (names are: a call to `memcmp` per attribute cost more than the
/// comparison).
fn same_bytes(left: &[u8], right: &[u8]) -> bool {
    fn word<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
        bytes.get(at..at + N).and_then(|chunk| chunk.try_into().ok())
    }
    let len = left.len();
    if len != right.len() {
        return false;
    }
    match len {
        4..=8 => word::<4>(left, 0) == word::<4>(right, 0) && word::<4>(left, len - 4) == word::<4>(right, len - 4),
        9..=16 => word::<8>(left, 0) == word::<8>(right, 0) && word::<8>(left, len - 8) == word::<8>(right, len - 8),
        _ => left == right,
    }
}

/// Every byte of a word set to `byte`.
const fn splat(byte: u8) -> u64 {
    0x0101_0101_0101_0101 * byte as u64
}

/// The high bit of every byte of `word` below `limit` (at most 0x80), exact up to the
/// lowest such byte: a borrow can mark bytes above it, so only the lowest mark (the
/// first byte in the text) may be read.
fn bytes_below(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(splat(limit)) & !word & splat(0x80)
}

/// The high bit of every byte of `word` equal to `byte`, exact up to the lowest.
fn bytes_equal(word: u64, byte: u8) -> u64 {
    bytes_below(word ^ splat(byte), 1)
}

/// How many bytes from `at` on an attribute value's scan passes over: all but its
/// `quote`, `<`, `&` and control characters (tab and line ends among them, which are
/// rewritten). Eight bytes at a time, a word each (values are most of a CIB's bytes).
fn value_run(bytes: &[u8], at: usize, quote: u8) -> usize {
    let stops = |byte: u8| byte == quote || byte == b'<' || byte == b'&' || byte < 0x20;
    let rest = bytes.get(at..).unwrap_or_default();
    let mut done = 0;
    while let Some(&chunk) = rest.get(done..done + 8).and_then(|chunk| <&[u8; 8]>::try_from(chunk).ok()) {
        let word = u64::from_le_bytes(chunk);
        let marks = bytes_equal(word, quote) | bytes_equal(word, b'<') | bytes_equal(word, b'&') | bytes_below(word, 0x20);
        if marks != 0 {
            // The lowest mark is the first stop: little-endian, the first byte is lowest.
            return done + (marks.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    let tail = rest.get(done..).unwrap_or_default();
    done + tail.iter().position(|&byte| stops(byte)).unwrap_or(tail.len())
}

/// How many bytes from `at` on are spaces, a word at a time.
fn space_run(bytes: &[u8], at: usize) -> usize {
    let rest = bytes.get(at..).unwrap_or_default();
    let mut done = 0;
    while let Some(&chunk) = rest.get(done..done + 8).and_then(|chunk| <&[u8; 8]>::try_from(chunk).ok()) {
        let others = u64::from_le_bytes(chunk) ^ splat(b' ');
        if others != 0 {
            return done + (others.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    let tail = rest.get(done..).unwrap_or_default();
    done + tail.iter().position(|&byte| byte != b' ').unwrap_or(tail.len())
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// A cheap hash of an attribute name for the duplicate filter: its length and its
/// first and last bytes.
fn name_hash(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let first = u32::from(bytes.first().copied().unwrap_or(0));
    let last = u32::from(bytes.last().copied().unwrap_or(0));
    (bytes.len() as u32).wrapping_mul(7) ^ first.wrapping_mul(31) ^ last.wrapping_mul(17) ^ (last >> 3)
}

/// An attribute value as XML reads it: references replaced, and every line end or tab
/// a space (`\r\n` one space). None for a reference other than the five predefined
/// ones and character references to characters XML allows.
fn decode_value(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '&' => {
                let end = raw[at..].find(';')? + at;
                let name = &raw[at + 1..end];
                let decoded = match name {
                    "lt" => '<',
                    "gt" => '>',
                    "amp" => '&',
                    "quot" => '"',
                    "apos" => '\'',
                    _ => {
                        let code = if let Some(hex) = name.strip_prefix("#x") {
                            if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                                return None;
                            }
                            u32::from_str_radix(hex, 16).ok()?
                        } else if let Some(decimal) = name.strip_prefix('#') {
                            if decimal.is_empty() || !decimal.bytes().all(|b| b.is_ascii_digit()) {
                                return None;
                            }
                            decimal.parse::<u32>().ok()?
                        } else {
                            return None;
                        };
                        let decoded = char::from_u32(code)?;
                        let allowed = matches!(decoded, '\t' | '\n' | '\r') || (decoded >= ' ' && !matches!(decoded, '\u{FFFE}' | '\u{FFFF}'));
                        if !allowed {
                            return None;
                        }
                        decoded
                    }
                };
                out.push(decoded);
                while chars.peek().is_some_and(|(next, _)| *next <= end) {
                    chars.next();
                }
            }
            '\r' => {
                if chars.peek().is_some_and(|(_, next)| *next == '\n') {
                    chars.next();
                }
                out.push(' ');
            }
            '\n' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses and reads `text` as `import` does, into owned results for the asserts.
    fn parse_and<T>(text: &str, check: impl FnOnce(Result<(Element<'_>, Vec<DanglingRef>), String>) -> T) -> T {
        match Document::parse(text) {
            Ok(mut document) => {
                let unescaped = document.unescaped();
                check(document.tree(&unescaped))
            }
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

    /// The tree and dangling references as roxmltree reads `text`.
    fn through_roxmltree(text: &str, check: impl FnOnce(Result<(Element<'_>, Vec<DanglingRef>), String>)) {
        let mut document = Document(Parsed::Xml(roxmltree::Document::parse(text).expect("well-formed")));
        let unescaped = document.unescaped();
        check(document.tree(&unescaped));
    }

    /// The fast reader reads `text` itself, to the tree roxmltree reads.
    fn assert_read_alike(name: &str, text: &str) {
        assert!(read_fast(text).is_ok(), "{name}: the fast reader declined it");
        parse_and(text, |fast| through_roxmltree(text, |slow| assert_eq!(fast, slow, "{name}")));
    }

    #[test]
    fn the_fast_reader_reads_as_roxmltree_does() {
        let text = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- a comment -->\n<?pi some data?>\
            <cib a='single \"quoted\"' b=\"&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#10;\" c=\"tab\there\r\nnext\rline\nend\" d = \"\" e=\"&#x9;&#13;\">\r\n\
              <configuration><resources>\
                <primitive id=\"a&amp;b\"><operations id=\"ops\"><op id=\"o1\" name=\"monitor\" interval=\"10\"/></operations></primitive>\
                <primitive id=\"b\"><operations id-ref=\"ops\"/><!-- - --></primitive>\
                <primitive id=\"c\"><operations id-ref=\"nowhere\"/></primitive>\
                <primitive id=\"d\" description=\"caf\u{e9} \u{1f600} > ok\"><meta_attributes id-ref=\"a&amp;b\"/></primitive>\
              </resources></configuration>text inside<status/>\t</cib>\n<!-- after -->\n";
        assert_read_alike("crafted", text);
        assert_read_alike("plain", "<cib><configuration/></cib>");

        // Declined, and then read (or refused) by roxmltree as before.
        let many_attributes = format!("<cib {}/>", (0..=MAX_FAST_ATTRIBUTES).map(|n| format!("a{n}=\"\"")).collect::<Vec<_>>().join(" "));
        for declined in [
            "<!DOCTYPE cib><cib/>",
            "<cib xmlns=\"urn:x\"/>",
            "<x:cib xmlns:x=\"urn:x\"/>",
            "<cib><![CDATA[text]]></cib>",
            "<cib>&amp;</cib>",
            "<cib a=\"&unknown;\"/>",
            "<cib a=\"1\" a=\"2\"/>",
            "<cib a=\"1\"b=\"2\"/>",
            "<cib></nib>",
            "<cib/><cib/>",
            "text<cib/>",
            "<cib>",
            "<cib a=\"\u{1}\"/>",
            "<c\u{e9}/>",
            "<cib><!-- a ---></cib>",
            "<?xml version=\"1.0\" junk?><cib/>",
            "<?xml version=\"1.0\"encoding=\"UTF-8\"?><cib/>",
            "<?xml encoding=\"UTF-8\" version=\"1.0\"?><cib/>",
            "<?xml version=\"1.0\" encoding=\"latin1\"?><cib/>",
            "<cib a=\"x\u{ffff}\"/>",
            "<cib>\u{fffe}</cib>",
            many_attributes.as_str(),
        ] {
            assert!(read_fast(declined).is_err(), "{declined:?} was read fast");
            let roxmltree = roxmltree::Document::parse(declined).is_ok();
            assert_eq!(Document::parse(declined).is_ok(), roxmltree, "{declined:?}");
        }
    }

    /// Attribute names recognized from the previous element of the same tag are read
    /// as any other: a longer name sharing the prefix, whitespace around `=`, another
    /// order, fewer or more attributes, a repeated name after the expected ones.
    #[test]
    fn names_expected_from_the_previous_element_are_read_as_roxmltree_does() {
        let elements = [
            r#"<op id="o1" name="monitor" interval="10"/>"#,
            r#"<op id="o2" name="monitor" interval="10"/>"#,
            r#"<op id-ref="o1"/>"#,
            r#"<op id = "o3" name ="start" interval= '0'/>"#,
            r#"<op name="stop" id="o4"/>"#,
            r#"<op id="o5" name="stop" interval="0" timeout="20s"/>"#,
            r#"<op id="o6" name="stop" interval="0" timeout="20s"/>"#,
            r#"<op id="o7"/>"#,
            r#"<op/>"#,
            r#"<op id="o8" name="n" interval="1" timeout="2" on-fail="block" role="Promoted" description="long enough to need two words"/>"#,
            r#"<op id="o9" name="n" interval="1" timeout="2" on-fail="block" role="Promoted" description="same names, same order"/>"#,
            // Tags that begin like the previous sibling's.
            r#"<operation id="o10"/>"#,
            r#"<op/>"#,
            r#"<op.x id="o11"/>"#,
            r#"<op>"#,
            r#"</op>"#,
        ];
        let text = format!("<cib><configuration><operations>{}</operations></configuration></cib>", elements.concat());
        assert_read_alike("expected names", &text);
        // A prefixed or non-ASCII tag after a sibling whose tag it begins with is
        // still left to roxmltree.
        for declined in ["<cib><op/><op:x xmlns:op=\"urn:x\"/></cib>", "<cib><op/><op\u{e9}/></cib>"] {
            assert!(read_fast(declined).is_err(), "{declined:?} was read fast");
            assert_eq!(Document::parse(declined).is_ok(), roxmltree::Document::parse(declined).is_ok(), "{declined:?}");
        }
        // A name repeated after the expected ones is caught, as without expectations.
        for repeated in [r#"<op id="a" name="b"/><op id="c" name="d" id="e"/>"#, r#"<op id="a" name="b"/><op id="c" name="d" name="e"/>"#] {
            let text = format!("<cib>{repeated}</cib>");
            assert!(read_fast(&text).is_err(), "{repeated:?} was read fast");
            assert!(Document::parse(&text).is_err(), "{repeated:?}");
        }
    }

    #[test]
    fn short_byte_strings_compare_as_slices_do() {
        let words: Vec<Vec<u8>> = (0..=20).flat_map(|len| [vec![b'a'; len], (0..len).map(|at| b'a' + (at % 26) as u8).collect()]).collect();
        for left in &words {
            for right in &words {
                assert_eq!(same_bytes(left, right), left == right, "{left:?} {right:?}");
                let mut changed = right.clone();
                for at in 0..changed.len() {
                    changed[at] ^= 1;
                    assert_eq!(same_bytes(left, &changed), *left == changed);
                    changed[at] ^= 1;
                }
            }
        }
    }

    /// The word-at-a-time scans stop where the byte-at-a-time definitions do, whatever
    /// byte sits in whatever place of a word, and whatever follows it.
    #[test]
    fn word_scans_stop_where_byte_scans_do() {
        let interesting: Vec<u8> = vec![
            0, 1, 8, 9, 10, 13, 31, 32, 33, b'"', b'\'', b'&', b'<', b'=', b'>', b'-', b'.', b'/', b':', b'_', b'0', b'9', b'A', b'Z', b'a', b'z', 127, 128,
            0xc3, 0xef, 255,
        ];
        for &stop in &interesting {
            for at in 0..20 {
                for &after in &[0u8, b' ', b'"', 200] {
                    let mut bytes = vec![b'x'; 24];
                    bytes[at] = stop;
                    if at + 1 < bytes.len() {
                        bytes[at + 1] = after;
                    }
                    for quote in [b'"', b'\''] {
                        let expected = bytes.iter().position(|&byte| byte == quote || byte == b'<' || byte == b'&' || byte < 0x20).unwrap_or(bytes.len());
                        assert_eq!(value_run(&bytes, 0, quote), expected, "value {bytes:?}");
                    }
                    let expected = bytes.iter().position(|&byte| !NAME_PLAIN[usize::from(byte)]).unwrap_or(bytes.len());
                    assert_eq!(name_run(&bytes, 0), expected, "name {bytes:?}");
                    let spaces: Vec<u8> = bytes.iter().map(|&byte| if byte == b'x' { b' ' } else { byte }).collect();
                    let expected = spaces.iter().position(|&byte| byte != b' ').unwrap_or(spaces.len());
                    assert_eq!(space_run(&spaces, 0), expected, "spaces {spaces:?}");
                }
            }
        }
    }

    /// Every scenario of the conformance corpus is read by the fast reader, to the tree
    /// roxmltree reads.
    #[test]
    fn the_fast_reader_reads_the_conformance_corpus_as_roxmltree_does() {
        let directory = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/cases");
        let entries = std::fs::read_dir(&directory).unwrap_or_else(|error| panic!("the conformance corpus must be at {}: {error}", directory.display()));
        let mut count = 0;
        for path in entries.filter_map(Result::ok).map(|entry| entry.path()).filter(|path| path.extension().is_some_and(|ext| ext == "xml")) {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
            assert_read_alike(&path.display().to_string(), &text);
            count += 1;
        }
        assert!(count >= 300, "expected the whole corpus, found {count} scenarios");
    }

    #[test]
    fn malformed_text_is_an_error() {
        assert!(parse("<cib><configuration></cib>").is_err());
    }
}
