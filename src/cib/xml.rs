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
    // controls, refused below, or cannot be in a `str`).
    // One search per character: a single char is found by a byte search over the
    // text, a set of them by decoding every character (issue 19: 30% of the reading).
    if text.contains('\u{fffe}') || text.contains('\u{ffff}') {
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
    let mut elements = 0usize;
    loop {
        // Text up to the next tag: whitespace outside the root, no reference, no `>`
        // (`]]>` is not allowed there) and no control character.
        while let Some(&byte) = bytes.get(pos) {
            match byte {
                b'<' => break,
                b' ' | b'\t' | b'\n' | b'\r' => {}
                b'&' | b'>' => return Err(Unsupported),
                byte if byte < 0x20 || stack.is_empty() => return Err(Unsupported),
                _ => {}
            }
            pos += 1;
        }
        if pos >= bytes.len() {
            break;
        }
        match bytes.get(pos + 1) {
            Some(b'/') => {
                let (name, after) = read_name(text, pos + 2)?;
                pos = skip_whitespace(bytes, after);
                if bytes.get(pos) != Some(&b'>') {
                    return Err(Unsupported);
                }
                pos += 1;
                let mut element = stack.pop().ok_or(Unsupported)?;
                if element.tag != name {
                    return Err(Unsupported);
                }
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
                let (tag, mut at) = read_name(text, pos + 1)?;
                attributes.clear();
                let mut seen: u64 = 0;
                let open = loop {
                    let after = skip_whitespace(bytes, at);
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
                    let (name, after_name) = read_name(text, after)?;
                    let equals = skip_whitespace(bytes, after_name);
                    if bytes.get(equals) != Some(&b'=') {
                        return Err(Unsupported);
                    }
                    let quote_at = skip_whitespace(bytes, equals + 1);
                    let quote = match bytes.get(quote_at) {
                        Some(&quote @ (b'"' | b'\'')) => quote,
                        _ => return Err(Unsupported),
                    };
                    let start = quote_at + 1;
                    let mut end = start;
                    let mut rewrite = false;
                    loop {
                        end += plain_run(bytes, end, &VALUE_PLAIN);
                        match bytes.get(end) {
                            None | Some(b'<') => return Err(Unsupported),
                            Some(&byte) if byte == quote => break,
                            Some(b'&' | b'\t' | b'\n' | b'\r') => rewrite = true,
                            Some(&byte) if byte < 0x20 => return Err(Unsupported),
                            Some(_) => {}
                        }
                        end += 1;
                    }
                    let value = &text[start..end];
                    at = end + 1;
                    // `xmlns` declares a namespace: roxmltree's to read.
                    if name == "xmlns" {
                        return Err(Unsupported);
                    }
                    // A name seen twice is not well-formed; the bit filter keeps the
                    // check linear for the dozen or more attributes of a history entry.
                    let bit = 1u64 << (name_hash(name) & 63);
                    if seen & bit != 0 && attributes.iter().any(|(other, _)| *other == name) {
                        return Err(Unsupported);
                    }
                    seen |= bit;
                    unescaped.has_id_refs |= name == "id-ref";
                    if rewrite {
                        let decoded = decode_value(value).ok_or(Unsupported)?;
                        unescaped.index.insert(value.as_ptr(), unescaped.values.len());
                        unescaped.values.push(decoded.into_boxed_str());
                    }
                    attributes.push((name, value));
                };
                let (open, after) = open;
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
    end += plain_run(bytes, end, &NAME_PLAIN);
    if let Some(byte) = bytes.get(end) {
        if *byte >= 0x80 || *byte == b':' {
            // Names outside ASCII, and namespace prefixes, are roxmltree's.
            return Err(Unsupported);
        }
    }
    Ok((&text[at..end], end))
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

/// The bytes an attribute value's scan passes over: all but the quotes, `<`, `&` and
/// control characters (tab and line ends among them, which are rewritten).
const VALUE_PLAIN: [bool; 256] = {
    let mut table = [true; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = false;
        byte += 1;
    }
    table[b'"' as usize] = false;
    table[b'\'' as usize] = false;
    table[b'<' as usize] = false;
    table[b'&' as usize] = false;
    table
};

/// How many bytes from `at` on are `plain`.
fn plain_run(bytes: &[u8], at: usize, plain: &[bool; 256]) -> usize {
    let rest = bytes.get(at..).unwrap_or_default();
    rest.iter().position(|&byte| !plain[usize::from(byte)]).unwrap_or(rest.len())
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
