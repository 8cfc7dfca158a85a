//! Sealed files: snapshots and exports encrypted to the fund's recovery key.
//!
//! A snapshot or an export holds resident IDs, names, enrollments and
//! diagnoses. Once it leaves the service it is copied, carried and kept
//! where the service cannot guard it, so it can be written *sealed*: in the
//! age format (age-encryption.org/v1), encrypted to one or more X25519
//! public keys (`age1…`, the *recipients*). Whoever writes or carries a
//! sealed file cannot read it; only the holder of a matching identity
//! (`AGE-SECRET-KEY-1…`, the fund's recovery key, which the operator does
//! not hold) can, with `medassist snapshot restore --identity` or the
//! standard tool (`age -d -i key.txt`, Debian's `age` package).
//!
//! Why age and not SM2/SM4 is in docs/SECURITY.md. age authenticates every
//! 64 KiB chunk and the end of the stream, so a damaged or truncated sealed
//! file is refused when it is opened, as a damaged plain one is.

use std::{
    fmt,
    io::{self, BufRead, BufReader, Read, Write},
    path::Path,
    str::FromStr,
};

use age::x25519;

/// How every sealed file begins (the age header's first line); a plain
/// snapshot begins `MEDASSIST-SNAPSHOT`, an export with its header row.
pub const MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// Most recipients one file is sealed to: a fund has a recovery key or
/// two, not hundreds, and each adds a header stanza to every file.
pub const RECIPIENTS_MAX: usize = 64;
/// Largest recipients or identity file read: each key is one line.
const KEY_FILE_BYTES_MAX: u64 = 64 * 1024;

/// The public keys a file is sealed to.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Recipients(Vec<x25519::Recipient>);

impl Recipients {
    /// Reads recipients (`age1…`, one per item); names the first bad one by
    /// its position, never echoing more than its first characters.
    pub fn parse<S: AsRef<str>>(texts: impl IntoIterator<Item = S>) -> Result<Recipients, String> {
        let mut recipients = Recipients::default();
        for (index, text) in texts.into_iter().enumerate() {
            recipients.push(text.as_ref(), || format!("recipient {}", index + 1))?;
        }
        Ok(recipients)
    }

    /// Reads a recipients file as `age -R` does: one `age1…` a line, blank
    /// lines and `#` comments ignored.
    pub fn read_file(path: &Path) -> Result<Recipients, String> {
        let text = read_key_file(path)?;
        let mut recipients = Recipients::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            recipients.push(line, || format!("{} line {}", path.display(), number + 1))?;
        }
        if recipients.is_empty() {
            return Err(format!("{} lists no recipient", path.display()));
        }
        Ok(recipients)
    }

    fn push(&mut self, text: &str, at: impl Fn() -> String) -> Result<(), String> {
        if self.0.len() == RECIPIENTS_MAX {
            return Err(format!("{}: more than {RECIPIENTS_MAX} recipients", at()));
        }
        let text = text.trim();
        let recipient = x25519::Recipient::from_str(text).map_err(|why| {
            let start: String = text.chars().take(8).collect();
            format!(
                "{}: {start:?}… is not an age X25519 recipient (age1…, as age-keygen prints): {why}",
                at()
            )
        })?;
        if !self.0.contains(&recipient) {
            self.0.push(recipient);
        }
        Ok(())
    }

    /// Adds `other`'s recipients (a flag's and a file's).
    pub fn merge(&mut self, other: Recipients) -> Result<(), String> {
        for recipient in other.0 {
            if self.0.len() == RECIPIENTS_MAX {
                return Err(format!("more than {RECIPIENTS_MAX} recipients"));
            }
            if !self.0.contains(&recipient) {
                self.0.push(recipient);
            }
        }
        Ok(())
    }

    /// True when there is no recipient: files are written plain.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many recipients there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    fn encryptor(&self) -> io::Result<age::Encryptor> {
        age::Encryptor::with_recipients(self.0.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| io::Error::other(format!("cannot seal: {e}")))
    }
}

/// Public keys, shown whole: they are not secret, and an operator checks
/// them against the fund's.
impl fmt::Debug for Recipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

/// The identities (private keys) that open sealed files, and the file they
/// came from, to name it when none of them fits.
pub struct Identities {
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
    file: String,
}

impl Identities {
    /// Reads an identity file as `age-keygen` writes it (`AGE-SECRET-KEY-1…`
    /// lines, `#` comments). What is wrong is said without echoing the file.
    pub fn read_file(path: &Path) -> Result<Identities, String> {
        let text = read_key_file(path)?;
        let unreadable = || {
            format!(
                "{} is not an age identity file (AGE-SECRET-KEY-1… lines, as age-keygen writes)",
                path.display()
            )
        };
        let keys = age::IdentityFile::from_buffer(text.as_bytes())
            .map_err(|_| unreadable())?
            .into_identities()
            .map_err(|_| unreadable())?;
        if keys.is_empty() {
            return Err(unreadable());
        }
        Ok(Identities {
            keys,
            file: path.display().to_string(),
        })
    }
}

/// Reads a small key file whole, refusing anything larger than a key file is.
fn read_key_file(path: &Path) -> Result<String, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(KEY_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.len() as u64 > KEY_FILE_BYTES_MAX {
        return Err(format!(
            "{} is larger than {KEY_FILE_BYTES_MAX} bytes: not a key file",
            path.display()
        ));
    }
    Ok(text)
}

/// Where a snapshot or an export is written: through as it is, or sealed
/// to recipients. [`Sink::finish`] must be called: it writes a sealed
/// file's last, authenticated chunk.
pub enum Sink<W: Write> {
    /// Written as it is.
    Plain(W),
    /// Encrypted to recipients on the way.
    Sealed(age::stream::StreamWriter<W>),
}

impl<W: Write> Sink<W> {
    /// Writes to `out`, sealed when `recipients` holds any.
    pub fn new(out: W, recipients: &Recipients) -> io::Result<Sink<W>> {
        if recipients.is_empty() {
            return Ok(Sink::Plain(out));
        }
        Ok(Sink::Sealed(recipients.encryptor()?.wrap_output(out)?))
    }

    /// Whether what is written is sealed.
    pub fn is_sealed(&self) -> bool {
        matches!(self, Sink::Sealed(_))
    }

    /// Ends the file (a sealed one's last chunk) and returns the output.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Sink::Plain(out) => Ok(out),
            Sink::Sealed(stream) => stream.finish(),
        }
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(out) => out.write(bytes),
            Sink::Sealed(stream) => stream.write(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(out) => out.flush(),
            Sink::Sealed(stream) => stream.flush(),
        }
    }
}

/// Whether bytes that begin so are a sealed file.
pub fn is_sealed(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// Opens `path` for reading: a plain file as it is, a sealed one decrypted
/// with `identities`. Refuses, in one line and before any of it is read, a
/// sealed file without identities or with none that fits. A sealed file
/// damaged or cut short fails later, while it is read, with an
/// [`io::ErrorKind::InvalidData`] or [`io::ErrorKind::UnexpectedEof`] error.
pub fn open(path: &Path, identities: Option<&Identities>) -> Result<Box<dyn Read>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let head = input
        .fill_buf()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !is_sealed(head) {
        return Ok(Box::new(input));
    }
    let Some(identities) = identities else {
        return Err(format!(
            "{} is encrypted (age): give the identity that opens it with --identity FILE",
            path.display()
        ));
    };
    let decryptor =
        age::Decryptor::new_buffered(input).map_err(|e| refused(path, identities, e))?;
    let keys = identities
        .keys
        .iter()
        .map(|k| k.as_ref() as &dyn age::Identity);
    let reader = decryptor
        .decrypt(keys)
        .map_err(|e| refused(path, identities, e))?;
    Ok(Box::new(reader))
}

/// Why a sealed file cannot be opened, in one line (age's own messages are
/// localised and may span lines).
fn refused(path: &Path, identities: &Identities, error: age::DecryptError) -> String {
    let file = path.display();
    match error {
        age::DecryptError::NoMatchingKeys => format!(
            "{file} is not encrypted to any key in {}: wrong identity, nothing was read",
            identities.file
        ),
        age::DecryptError::Io(e) => format!("cannot read {file}: {e}"),
        age::DecryptError::UnknownFormat => {
            format!("{file} is in an age format this build does not know")
        }
        _ => format!("{file} is damaged: its age header does not check out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_pair() -> (x25519::Identity, Recipients) {
        let identity = x25519::Identity::generate();
        let recipients = Recipients::parse([identity.to_public().to_string()]).unwrap();
        (identity, recipients)
    }

    fn identity_file(dir: &Path, identity: &x25519::Identity) -> Identities {
        use age::secrecy::ExposeSecret;
        let path = dir.join("key.txt");
        let text = format!("# a comment\n{}\n", identity.to_string().expose_secret());
        std::fs::write(&path, text).unwrap();
        Identities::read_file(&path).unwrap()
    }

    /// Proves bytes sealed to a recipient open with its identity, begin with
    /// the age header, and hold nothing of the plaintext; a plain sink
    /// passes them through.
    #[test]
    fn sealed_bytes_open_with_the_identity_only() {
        let dir = tempfile::tempdir().unwrap();
        let (identity, recipients) = key_pair();
        let plaintext = b"320602196001010612,zhang san,N18.500\n".repeat(5000);
        let mut sink = Sink::new(Vec::new(), &recipients).unwrap();
        assert!(sink.is_sealed());
        sink.write_all(&plaintext).unwrap();
        let sealed = sink.finish().unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(18).any(|w| w == b"320602196001010612"));
        let path = dir.path().join("sealed");
        std::fs::write(&path, &sealed).unwrap();
        let mut opened = Vec::new();
        open(&path, Some(&identity_file(dir.path(), &identity)))
            .unwrap()
            .read_to_end(&mut opened)
            .unwrap();
        assert_eq!(opened, plaintext);

        let plain = Sink::new(Vec::new(), &Recipients::default()).unwrap();
        assert!(!plain.is_sealed());
        let plain_path = dir.path().join("plain");
        std::fs::write(&plain_path, &plaintext).unwrap();
        let mut read = Vec::new();
        open(&plain_path, None)
            .unwrap()
            .read_to_end(&mut read)
            .unwrap();
        assert_eq!(read, plaintext);
    }

    /// Proves a sealed file is refused in one line without an identity, with
    /// the wrong one, and (while read) when damaged or cut short.
    #[test]
    fn wrong_keys_and_damage_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, recipients) = key_pair();
        let mut sink = Sink::new(Vec::new(), &recipients).unwrap();
        sink.write_all(&[7u8; 200_000]).unwrap();
        let sealed = sink.finish().unwrap();
        let path = dir.path().join("sealed");
        std::fs::write(&path, &sealed).unwrap();
        let no_key = open(&path, None).err().unwrap();
        assert!(no_key.contains("--identity"), "{no_key}");
        let (stranger, _) = key_pair();
        let wrong = open(&path, Some(&identity_file(dir.path(), &stranger)))
            .err()
            .unwrap();
        assert!(wrong.contains("wrong identity"), "{wrong}");
        assert_eq!(wrong.lines().count(), 1);

        let (identity, recipients) = key_pair();
        let mut sink = Sink::new(Vec::new(), &recipients).unwrap();
        sink.write_all(&[7u8; 200_000]).unwrap();
        let sealed = sink.finish().unwrap();
        let identities = identity_file(dir.path(), &identity);
        let mut flipped = sealed.clone();
        let at = sealed.len() - 1000;
        flipped[at] ^= 1;
        for (name, bytes) in [("flipped", &flipped[..]), ("cut", &sealed[..at])] {
            std::fs::write(&path, bytes).unwrap();
            let error = open(&path, Some(&identities))
                .unwrap()
                .read_to_end(&mut Vec::new())
                .unwrap_err();
            assert!(
                matches!(
                    error.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ),
                "{name}: {error:?}"
            );
        }
    }

    /// Proves recipients are read from lists and files as age reads them,
    /// and bad ones are named by position without echoing them whole.
    #[test]
    fn recipients_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let key = || x25519::Identity::generate().to_public().to_string();
        let (one, two) = (key(), key());
        let file = dir.path().join("recipients.txt");
        std::fs::write(&file, format!("# the fund\n\n{one}\n  {two}\n{one}\n")).unwrap();
        let read = Recipients::read_file(&file).unwrap();
        assert_eq!(read.len(), 2, "a recipient listed twice is kept once");
        let mut merged = Recipients::parse([&one]).unwrap();
        merged.merge(read).unwrap();
        assert_eq!(merged.len(), 2);
        let error = Recipients::parse([one.as_str(), "age1notakey"]).unwrap_err();
        assert!(error.starts_with("recipient 2: \"age1nota\"…"), "{error}");
        std::fs::write(&file, "# nothing\n").unwrap();
        assert!(
            Recipients::read_file(&file)
                .unwrap_err()
                .contains("no recipient")
        );
        std::fs::write(&file, "AGE-SECRET-KEY-1SECRETSECRET\n").unwrap();
        let error = Recipients::read_file(&file).unwrap_err();
        assert!(error.contains("line 1"), "{error}");
        assert!(
            !error.contains("SECRETSECRET"),
            "a key file's line is not echoed: {error}"
        );
        let many: Vec<String> = (0..=RECIPIENTS_MAX).map(|_| key()).collect();
        assert!(Recipients::parse(&many).unwrap_err().contains("more than"));
        std::fs::write(&file, "not an identity\n").unwrap();
        let error = Identities::read_file(&file).err().unwrap();
        assert!(error.contains("not an age identity file"), "{error}");
    }
}
