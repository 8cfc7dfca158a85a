//! A FUSE file system that loses what was never synced, to test durability
//! claims that `kill -9` cannot: after SIGKILL the kernel's page cache still
//! holds every write, so only a simulated power cut shows a missing fsync.
//!
//! Every inode has a *synced* state and a *current* state. Writes, truncates,
//! fallocate, create, mkdir, unlink, rename and rmdir change the current state
//! only; `fsync`/`fdatasync` of a file makes its current content and size
//! synced, `fsync` of a directory makes its current entries synced. A power
//! cut ([`PowerFs::cut`]) makes every later operation fail with EIO and change
//! nothing; [`PowerFs::restore`] then unmounts, drops everything unsynced and
//! mounts a fresh session, so no kernel cache survives the cut either.
//!
//! That is the kindest disk that honours fsync. A real one with a volatile
//! write cache is harsher: at a power cut it keeps any subset of the pages
//! written since the last sync, in any order. [`PowerFs::mount_reordering`]
//! mounts that disk: at each cut, every 4 KiB page of a file dirtied since
//! the file's last sync keeps either all of its latest bytes or all of its
//! synced bytes, and the file's size is either the synced or the latest one,
//! each decided by a coin from a seeded generator; [`PowerFs::last_cut`]
//! reports what was kept. Directory entries still keep only what a directory
//! fsync made durable. A store whose recovery relies on the order in which
//! unsynced pages reach the disk (a log read up to its first tear while
//! later pages landed, durable pages overwritten in place) is caught here
//! and nowhere else.
//!
//! Content is kept as shared 4 KiB pages with a set of pages dirtied since
//! the last sync, so a sync costs one reference count per dirty page (the
//! next write to such a page copies it): services fdatasync large journals on
//! every commit, and copying whole files per sync would dominate the test.
//! Attributes and entries are served with TTL 0 and the kernel's writeback
//! cache is off, so the kernel never answers from a stale copy.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    ffi::{OsStr, OsString},
    fmt,
    ops::Range,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use fuser::{
    AccessFlags, BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, FopenFlags,
    Generation, INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};
use tempfile::TempDir;

const PAGE: usize = 4096;
type Page = [u8; PAGE];
/// Nothing the kernel learns may be reused without asking again.
const TTL: Duration = Duration::ZERO;
const ROOT: u64 = INodeNo::ROOT.0;

/// A file's bytes as 4 KiB pages; `None` is a hole (zeros). Bytes past
/// `size` inside the last page are always zero, so growing needs no zeroing.
#[derive(Clone, Default)]
struct Content {
    pages: Vec<Option<Arc<Page>>>,
    size: u64,
}

impl Content {
    fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        let end = self.size.min(offset.saturating_add(len as u64));
        let mut out = Vec::new();
        let mut pos = offset;
        while pos < end {
            let (index, within) = ((pos / PAGE as u64) as usize, (pos % PAGE as u64) as usize);
            let n = (PAGE - within).min((end - pos) as usize);
            match self.pages.get(index).and_then(Option::as_ref) {
                Some(page) => out.extend_from_slice(&page[within..within + n]),
                None => out.resize(out.len() + n, 0),
            }
            pos += n as u64;
        }
        out
    }
}

fn pages_for(size: u64) -> usize {
    size.div_ceil(PAGE as u64) as usize
}

/// A regular file: what a power cut would leave, what readers see now, and
/// which pages differ between the two.
#[derive(Default)]
struct FileState {
    current: Content,
    synced: Content,
    dirty: BTreeSet<usize>,
}

impl FileState {
    fn write(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        if self.current.pages.len() < pages_for(end) {
            self.current.pages.resize(pages_for(end), None);
        }
        let (mut pos, mut rest) = (offset, data);
        while !rest.is_empty() {
            let (index, within) = ((pos / PAGE as u64) as usize, (pos % PAGE as u64) as usize);
            let n = (PAGE - within).min(rest.len());
            let page = self.current.pages[index].get_or_insert_with(|| Arc::new([0; PAGE]));
            Arc::make_mut(page)[within..within + n].copy_from_slice(&rest[..n]);
            self.dirty.insert(index);
            (pos, rest) = (pos + n as u64, &rest[n..]);
        }
        self.current.size = self.current.size.max(end);
    }

    fn truncate(&mut self, size: u64) {
        let keep = pages_for(size);
        if size < self.current.size {
            // Dropped pages are dirty too: a later sync must not resurrect
            // their synced bytes if the file grows again first.
            self.dirty.extend(keep..self.current.pages.len());
            self.current.pages.truncate(keep);
            let within = (size % PAGE as u64) as usize;
            if within != 0
                && let Some(Some(page)) = self.current.pages.get_mut(keep - 1)
            {
                Arc::make_mut(page)[within..].fill(0);
                self.dirty.insert(keep - 1);
            }
        } else {
            self.current
                .pages
                .resize(keep.max(self.current.pages.len()), None);
        }
        self.current.size = size;
    }

    /// A reordering disk's cut: each dirty page keeps all of its latest or
    /// all of its synced bytes, and the size is the latest or the synced
    /// one, a coin each; what is kept becomes the synced state. Answers what
    /// was kept, or `None` when nothing was written since the last sync.
    fn keep_some(&mut self, rng: &mut fastrand::Rng, path: PathBuf) -> Option<ReorderedFile> {
        if self.dirty.is_empty() && self.current.size == self.synced.size {
            return None;
        }
        let size_kept = if rng.bool() {
            self.current.size
        } else {
            self.synced.size
        };
        // Clean pages are the same in both states, so start from the synced
        // one; pages past the synced size that nobody wrote are holes.
        let mut kept = Content {
            pages: self.synced.pages.clone(),
            size: size_kept,
        };
        kept.pages.resize(pages_for(size_kept), None);
        let mut file = ReorderedFile {
            path,
            size_synced: self.synced.size,
            size_latest: self.current.size,
            size_kept,
            kept_new: Pages::default(),
            kept_old: Pages::default(),
            rewritten_durable: Pages::default(),
        };
        for &index in &self.dirty {
            if !rng.bool() {
                file.kept_old.push(index); // the synced page is already in place
                continue;
            }
            // A page dropped by a truncate is kept new as a hole.
            let latest = self.current.pages.get(index).cloned().flatten();
            file.kept_new.push(index);
            if self.overwrites_durable_data(index, latest.as_deref()) {
                file.rewritten_durable.push(index);
            }
            if let Some(slot) = kept.pages.get_mut(index) {
                *slot = latest;
            }
        }
        // Bytes past the size stay zero, whichever page the last one is.
        let within = (size_kept % PAGE as u64) as usize;
        if within != 0
            && let Some(Some(page)) = kept.pages.last_mut()
        {
            Arc::make_mut(page)[within..].fill(0);
        }
        self.synced = kept;
        self.dirty.clear();
        Some(file)
    }

    /// True when `latest` changes a non-zero byte that a sync made durable
    /// in page `index`. Filling durable zeros (a hole, a segment allocated
    /// with zeros, the rest of a page an append goes on) is how a log
    /// appends; changing data that was durable is a rewrite, and what a
    /// reordering cut then keeps is a mix of old and new pages.
    fn overwrites_durable_data(&self, index: usize, latest: Option<&Page>) -> bool {
        let start = (index * PAGE) as u64;
        let Some(synced) = self.synced.pages.get(index).and_then(Option::as_deref) else {
            return false; // a hole, or past the end: zeros
        };
        let end = self.synced.size.saturating_sub(start).min(PAGE as u64) as usize;
        let latest = latest.unwrap_or(&[0; PAGE]);
        (0..end).any(|i| synced[i] != 0 && synced[i] != latest[i])
    }

    /// fsync/fdatasync: only dirty pages are touched.
    fn sync(&mut self) {
        let n = self.current.pages.len();
        self.synced.pages.resize(n, None);
        for index in std::mem::take(&mut self.dirty) {
            if index < n {
                self.synced.pages[index] = self.current.pages[index].clone();
            }
        }
        self.synced.size = self.current.size;
    }
}

/// A directory: its entries now, and the entries a power cut would leave.
#[derive(Default)]
struct DirState {
    current: BTreeMap<OsString, u64>,
    synced: BTreeMap<OsString, u64>,
    parent: u64,
}

enum Kind {
    File(FileState),
    Dir(DirState),
}

struct Inode {
    kind: Kind,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// Names in current directories (files only; directories report 2).
    links: u32,
    /// Open handles; an unlinked file lives until the last one is released.
    open: u32,
}

impl Inode {
    fn new(kind: Kind, perm: u16, req: &Request) -> Inode {
        let now = SystemTime::now();
        Inode {
            kind,
            perm,
            uid: req.uid(),
            gid: req.gid(),
            atime: now,
            mtime: now,
            ctime: now,
            links: 0,
            open: 0,
        }
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let (kind, size, nlink) = match &self.kind {
            Kind::File(f) => (FileType::RegularFile, f.current.size, self.links),
            Kind::Dir(_) => (FileType::Directory, 0, 2),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            crtime: self.ctime,
            kind,
            perm: self.perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        }
    }
}

/// What the disk keeps at a power cut.
enum Disk {
    /// Exactly what was synced.
    Synced,
    /// Every write is durable at once: a cut loses nothing (the harness's
    /// positive control).
    Ideal,
    /// What was synced, and of each page written since, the latest or the
    /// synced bytes, as the generator's coins fall.
    Reordering(fastrand::Rng),
}

/// Everything the file system holds, shared between the FUSE session and
/// the test that cuts the power.
struct State {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    off: bool,
    disk: Disk,
    calls: Calls,
    /// What the last restore kept of unsynced pages (reordering disk only).
    last_cut: CutReport,
}

/// How often the durability-relevant calls were made since the mount, so a
/// failing test can say what the service did and did not ask for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Calls {
    pub writes: u64,
    pub fsyncs: u64,
    pub fsyncdirs: u64,
    pub creates: u64,
    pub renames: u64,
    pub unlinks: u64,
    pub truncates: u64,
    pub fallocates: u64,
}

/// What a reordering disk kept, at the last cut, of the pages written since
/// each file's last sync: enough for a failing test to say which file the
/// store could not recover from, and whether it had overwritten pages that
/// were already durable. Empty on the other disks.
#[derive(Clone, Debug, Default)]
pub struct CutReport {
    /// Files that had unsynced pages or an unsynced size, by path.
    pub files: Vec<ReorderedFile>,
}

/// One file at a cut of a reordering disk.
#[derive(Clone, Debug)]
pub struct ReorderedFile {
    /// Its first name reachable after the cut, relative to the mount.
    pub path: PathBuf,
    pub size_synced: u64,
    pub size_latest: u64,
    /// Which of the two sizes the cut kept.
    pub size_kept: u64,
    /// Dirty pages that kept their latest bytes.
    pub kept_new: Pages,
    /// Dirty pages that kept their synced bytes: the writes lost.
    pub kept_old: Pages,
    /// The kept-new pages that changed durable data (a non-zero byte made
    /// durable by a sync, overwritten since): a store that relies on the
    /// order of such writes is what this disk catches. Filling durable
    /// zeros (appending) does not count.
    pub rewritten_durable: Pages,
}

/// Page numbers (4 KiB each), in order, as ranges: where in a file a store
/// must look to see what the cut did.
#[derive(Clone, Debug, Default)]
pub struct Pages(pub Vec<Range<usize>>);

/// Ranges of pages a message shows, at most.
const RANGES_SHOWN: usize = 8;

impl Pages {
    /// Adds page `index`, which follows every page added so far.
    fn push(&mut self, index: usize) {
        match self.0.last_mut() {
            Some(range) if range.end == index => range.end += 1,
            _ => self.0.push(index..index + 1),
        }
    }

    /// How many pages.
    pub fn count(&self) -> usize {
        self.0.iter().map(ExactSizeIterator::len).sum()
    }
}

impl fmt::Display for Pages {
    /// `3 (pages 7..9, 12..13)`, the first ranges only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.count())?;
        if self.0.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = (self.0.iter().take(RANGES_SHOWN))
            .map(|r| format!("{}..{}", r.start, r.end))
            .collect();
        write!(f, " (pages {}", shown.join(", "))?;
        match self.0.len().saturating_sub(RANGES_SHOWN) {
            0 => write!(f, ")"),
            more => write!(f, " and {more} ranges more)"),
        }
    }
}

impl CutReport {
    pub fn kept_new(&self) -> usize {
        self.files.iter().map(|f| f.kept_new.count()).sum()
    }

    pub fn kept_old(&self) -> usize {
        self.files.iter().map(|f| f.kept_old.count()).sum()
    }

    /// Kept-new pages that overwrote durable data, in all files.
    pub fn rewritten_durable_pages(&self) -> usize {
        self.files.iter().map(|f| f.rewritten_durable.count()).sum()
    }
}

impl fmt::Display for CutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "of the 4 KiB pages written since their file's last sync, {} kept their new bytes \
             and {} their old; {} of the kept-new pages overwrote durable data",
            self.kept_new(),
            self.kept_old(),
            self.rewritten_durable_pages()
        )?;
        for file in &self.files {
            let size = if file.size_kept == file.size_latest {
                "latest"
            } else {
                "synced"
            };
            write!(
                f,
                "\n  {}: size {} B synced, {} B latest, the {size} kept; kept new {}; kept old {}",
                file.path.display(),
                file.size_synced,
                file.size_latest,
                file.kept_new,
                file.kept_old,
            )?;
            if file.rewritten_durable.count() > 0 {
                write!(f, "; overwrote durable data {}", file.rewritten_durable)?;
            }
        }
        Ok(())
    }
}

impl State {
    fn new() -> State {
        let root = Inode {
            kind: Kind::Dir(DirState {
                parent: ROOT,
                ..DirState::default()
            }),
            perm: 0o755,
            uid: 0,
            gid: 0,
            atime: SystemTime::now(),
            mtime: SystemTime::now(),
            ctime: SystemTime::now(),
            links: 1,
            open: 0,
        };
        State {
            inodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            off: false,
            disk: Disk::Synced,
            calls: Calls::default(),
            last_cut: CutReport::default(),
        }
    }

    fn dir(&self, ino: u64) -> Result<&DirState, Errno> {
        match self.inodes.get(&ino).map(|i| &i.kind) {
            Some(Kind::Dir(d)) => Ok(d),
            Some(Kind::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirState, Errno> {
        match self.inodes.get_mut(&ino).map(|i| &mut i.kind) {
            Some(Kind::Dir(d)) => Ok(d),
            Some(Kind::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut Inode, Errno> {
        match self.inodes.get_mut(&ino) {
            Some(
                inode @ Inode {
                    kind: Kind::File(_),
                    ..
                },
            ) => Ok(inode),
            Some(_) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir(parent)?
            .current
            .get(name)
            .copied()
            .ok_or(Errno::ENOENT)
    }

    /// Adds a new inode under `parent/name` in the current state.
    fn add(&mut self, parent: u64, name: &OsStr, mut inode: Inode) -> Result<u64, Errno> {
        if self.dir(parent)?.current.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        if let Kind::Dir(d) = &mut inode.kind {
            d.parent = parent;
        }
        inode.links = 1;
        self.inodes.insert(ino, inode);
        self.dir_mut(parent)?.current.insert(name.to_owned(), ino);
        Ok(ino)
    }

    /// Removes the name `parent/name` from the current state.
    fn remove(&mut self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        let ino = self
            .dir_mut(parent)?
            .current
            .remove(name)
            .ok_or(Errno::ENOENT)?;
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.links = inode.links.saturating_sub(1);
            inode.ctime = SystemTime::now();
        }
        self.collect(ino);
        Ok(ino)
    }

    /// Drops an inode nobody can reach now or after a power cut.
    fn collect(&mut self, ino: u64) {
        let Some(inode) = self.inodes.get(&ino) else {
            return;
        };
        if ino == ROOT || inode.links > 0 || inode.open > 0 {
            return;
        }
        let synced_somewhere = self.inodes.values().any(|i| match &i.kind {
            Kind::Dir(d) => d.synced.values().any(|&c| c == ino),
            Kind::File(_) => false,
        });
        if !synced_somewhere {
            self.inodes.remove(&ino);
        }
    }

    /// fsync or fdatasync of an open file or directory.
    fn fsync(&mut self, ino: u64) -> Result<(), Errno> {
        match self.inodes.get_mut(&ino).map(|i| &mut i.kind) {
            Some(Kind::File(f)) => f.sync(),
            Some(Kind::Dir(d)) => d.synced = d.current.clone(),
            None => return Err(Errno::ENOENT),
        }
        Ok(())
    }

    /// Makes everything current synced, as an ideal disk would at a cut.
    fn sync_everything(&mut self) {
        for inode in self.inodes.values_mut() {
            match &mut inode.kind {
                Kind::File(f) => f.sync(),
                Kind::Dir(d) => d.synced = d.current.clone(),
            }
        }
    }

    /// After a power cut: keep what is reachable from the root through
    /// synced entries, with synced content (on a reordering disk, with what
    /// the coins kept of unsynced pages); forget the rest.
    fn restore(&mut self) {
        // By inode number, so a reordering disk's coins fall in an order
        // that depends on what the files hold, never on a hash.
        let mut reachable: BTreeMap<u64, PathBuf> = BTreeMap::new();
        let mut stack = vec![(ROOT, ROOT, PathBuf::new())];
        while let Some((ino, parent, path)) = stack.pop() {
            if reachable.contains_key(&ino) {
                continue;
            }
            if let Some(Inode {
                kind: Kind::Dir(d), ..
            }) = self.inodes.get_mut(&ino)
            {
                d.parent = parent;
                stack.extend(
                    d.synced
                        .iter()
                        .map(|(name, &child)| (child, ino, path.join(name))),
                );
            }
            reachable.insert(ino, path);
        }
        self.inodes.retain(|ino, _| reachable.contains_key(ino));
        if let Disk::Reordering(rng) = &mut self.disk {
            let files = reachable.into_iter().filter_map(|(ino, path)| {
                match &mut self.inodes.get_mut(&ino)?.kind {
                    Kind::File(f) => f.keep_some(rng, path),
                    Kind::Dir(_) => None,
                }
            });
            self.last_cut = CutReport {
                files: files.collect(),
            };
        }
        let mut links: HashMap<u64, u32> = HashMap::new();
        for inode in self.inodes.values_mut() {
            inode.open = 0;
            match &mut inode.kind {
                Kind::File(f) => {
                    f.current = f.synced.clone();
                    f.dirty.clear();
                }
                Kind::Dir(d) => {
                    d.current = d.synced.clone();
                    for &child in d.current.values() {
                        *links.entry(child).or_default() += 1;
                    }
                }
            }
        }
        for (ino, inode) in &mut self.inodes {
            inode.links = links.get(ino).copied().unwrap_or(u32::from(*ino == ROOT));
        }
        self.off = false;
    }
}

/// The FUSE side: every call locks the shared state and fails with EIO once
/// the power is off.
struct Ops {
    state: Arc<Mutex<State>>,
}

impl Ops {
    /// The state, or EIO when the power is off.
    fn on(&self) -> Result<MutexGuard<'_, State>, Errno> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.off {
            Err(Errno::EIO)
        } else {
            Ok(state)
        }
    }

    fn entry(&self, reply: ReplyEntry, made: impl FnOnce(&mut State) -> Result<u64, Errno>) {
        let result = self.on().and_then(|mut s| {
            let ino = made(&mut s)?;
            Ok(s.inodes[&ino].attr(ino))
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn empty(&self, reply: ReplyEmpty, op: impl FnOnce(&mut State) -> Result<(), Errno>) {
        match self.on().and_then(|mut s| op(&mut s)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl fuser::Filesystem for Ops {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(reply, |s| s.child(parent.0, name));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.on().and_then(|s| {
            s.inodes
                .get(&ino.0)
                .map(|i| i.attr(ino.0))
                .ok_or(Errno::ENOENT)
        }) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = self.on().and_then(|mut s| {
            if let Some(size) = size {
                s.calls.truncates += 1;
                let inode = s.file_mut(ino.0)?;
                if let Kind::File(f) = &mut inode.kind {
                    f.truncate(size);
                }
                inode.mtime = SystemTime::now();
            }
            let inode = s.inodes.get_mut(&ino.0).ok_or(Errno::ENOENT)?;
            if let Some(mode) = mode {
                inode.perm = (mode & 0o7777) as u16;
            }
            inode.uid = uid.unwrap_or(inode.uid);
            inode.gid = gid.unwrap_or(inode.gid);
            inode.atime = atime.map(time).unwrap_or(inode.atime);
            inode.mtime = mtime.map(time).unwrap_or(inode.mtime);
            inode.ctime = ctime.unwrap_or_else(SystemTime::now);
            Ok(inode.attr(ino.0))
        });
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let perm = (mode & !umask & 0o7777) as u16;
        let inode = Inode::new(Kind::File(FileState::default()), perm, req);
        self.entry(reply, |s| {
            s.calls.creates += 1;
            s.add(parent.0, name, inode)
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let perm = (mode & !umask & 0o7777) as u16;
        let inode = Inode::new(Kind::Dir(DirState::default()), perm, req);
        self.entry(reply, |s| s.add(parent.0, name, inode));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |s| {
            s.calls.unlinks += 1;
            if let Kind::Dir(_) = s.inodes[&s.child(parent.0, name)?].kind {
                return Err(Errno::EISDIR);
            }
            s.remove(parent.0, name).map(drop)
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |s| {
            if !s.dir(s.child(parent.0, name)?)?.current.is_empty() {
                return Err(Errno::ENOTEMPTY);
            }
            s.remove(parent.0, name).map(drop)
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |s| {
            s.calls.renames += 1;
            if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
                return Err(Errno::EINVAL);
            }
            let ino = s.child(parent.0, name)?;
            s.dir(newparent.0)?;
            let moving_dir = matches!(s.inodes[&ino].kind, Kind::Dir(_));
            if moving_dir {
                // A directory cannot move under itself.
                let mut up = newparent.0;
                while up != ROOT {
                    if up == ino {
                        return Err(Errno::EINVAL);
                    }
                    up = s.dir(up)?.parent;
                }
            }
            if let Ok(target) = s.child(newparent.0, newname) {
                if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                    return Err(Errno::EEXIST);
                }
                if target == ino {
                    return Ok(());
                }
                match (&s.inodes[&target].kind, moving_dir) {
                    (Kind::Dir(d), true) if !d.current.is_empty() => {
                        return Err(Errno::ENOTEMPTY);
                    }
                    (Kind::Dir(_), false) => return Err(Errno::EISDIR),
                    (Kind::File(_), true) => return Err(Errno::ENOTDIR),
                    _ => {}
                }
                s.remove(newparent.0, newname)?;
            }
            s.dir_mut(parent.0)?.current.remove(name);
            s.dir_mut(newparent.0)?
                .current
                .insert(newname.to_owned(), ino);
            let inode = s.inodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
            inode.ctime = SystemTime::now();
            if let Kind::Dir(d) = &mut inode.kind {
                d.parent = newparent.0;
            }
            Ok(())
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.on().and_then(|mut s| {
            s.inodes.get_mut(&ino.0).ok_or(Errno::ENOENT)?.open += 1;
            Ok(())
        }) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.on().and_then(|mut s| match &s.file_mut(ino.0)?.kind {
            Kind::File(f) => Ok(f.current.read(offset, size as usize)),
            Kind::Dir(_) => Err(Errno::EISDIR),
        }) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.on().and_then(|mut s| {
            s.calls.writes += 1;
            let inode = s.file_mut(ino.0)?;
            if let Kind::File(f) = &mut inode.kind {
                f.write(offset, data);
            }
            inode.mtime = SystemTime::now();
            Ok(())
        }) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |_| Ok(()));
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Handles are not data: after a cut the restore forgets them all.
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !s.off
            && let Some(inode) = s.inodes.get_mut(&ino.0)
        {
            inode.open = inode.open.saturating_sub(1);
            s.collect(ino.0);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |s| {
            s.calls.fsyncs += 1;
            s.fsync(ino.0)
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.on().and_then(|s| s.dir(ino.0).map(drop)) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = self.on().and_then(|s| {
            let dir = s.dir(ino.0)?;
            let mut entries = vec![
                (ino.0, FileType::Directory, OsString::from(".")),
                (dir.parent, FileType::Directory, OsString::from("..")),
            ];
            for (name, &child) in &dir.current {
                let kind = match s.inodes.get(&child).map(|i| &i.kind) {
                    Some(Kind::Dir(_)) => FileType::Directory,
                    _ => FileType::RegularFile,
                };
                entries.push((child, kind, name.clone()));
            }
            Ok(entries)
        });
        match entries {
            Ok(entries) => {
                for (i, (child, kind, name)) in
                    entries.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |s| {
            s.calls.fsyncdirs += 1;
            let dir = s.dir_mut(ino.0)?;
            dir.synced = dir.current.clone();
            Ok(())
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.on() {
            Ok(_) => reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        self.empty(reply, |s| {
            s.inodes.get(&ino.0).map(drop).ok_or(Errno::ENOENT)
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let perm = (mode & !umask & 0o7777) as u16;
        let inode = Inode::new(Kind::File(FileState::default()), perm, req);
        match self.on().and_then(|mut s| {
            s.calls.creates += 1;
            let ino = s.add(parent.0, name, inode)?;
            let inode = s.inodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
            inode.open += 1;
            Ok(inode.attr(ino))
        }) {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |s| {
            s.calls.fallocates += 1;
            let inode = s.file_mut(ino.0)?;
            let Kind::File(f) = &mut inode.kind else {
                return Err(Errno::EISDIR);
            };
            match mode {
                // Holes read as zeros, so allocating is only growing.
                0 if offset + length > f.current.size => f.truncate(offset + length),
                0 | libc::FALLOC_FL_KEEP_SIZE => {}
                _ => return Err(Errno::EOPNOTSUPP),
            }
            Ok(())
        });
    }
}

/// A mounted power-cut file system on a temporary directory; dropping it
/// unmounts, even while a test panics.
pub struct PowerFs {
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
    _dir: TempDir,
}

impl PowerFs {
    /// Mounts an empty file system, or panics saying why FUSE is unusable:
    /// a durability test that cannot run must fail, never pass silently.
    pub fn mount() -> PowerFs {
        Self::mount_with(Disk::Synced)
    }

    /// Mounts an ideal disk, on which every write is durable as soon as it
    /// is acknowledged: a cut loses nothing. Harnesses run on it to show
    /// that what they report lost on [`PowerFs::mount`] is the service's
    /// doing, not theirs.
    pub fn mount_ideal() -> PowerFs {
        Self::mount_with(Disk::Ideal)
    }

    /// Mounts a disk with a volatile write cache that reorders: at each cut
    /// every page written since its file's last sync keeps its latest or
    /// its synced bytes, and each such file its latest or synced size, as a
    /// generator seeded with `seed` decides. The same writes and cuts with
    /// the same seed keep the same pages. [`PowerFs::last_cut`] says what
    /// was kept.
    pub fn mount_reordering(seed: u64) -> PowerFs {
        Self::mount_with(Disk::Reordering(fastrand::Rng::with_seed(seed)))
    }

    fn mount_with(disk: Disk) -> PowerFs {
        let dir = TempDir::new().expect("a temporary mount point");
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).expect("the mount point is created");
        let mut fs = PowerFs {
            state: Arc::new(Mutex::new(State {
                disk,
                ..State::new()
            })),
            session: None,
            mountpoint,
            _dir: dir,
        };
        fs.session = Some(fs.spawn());
        fs
    }

    fn spawn(&self) -> BackgroundSession {
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("powerfs".into()),
            MountOption::Subtype("powerfs".into()),
        ];
        config.n_threads = Some(2);
        let ops = Ops {
            state: Arc::clone(&self.state),
        };
        fuser::spawn_mount(ops, &self.mountpoint, &config).unwrap_or_else(|e| {
            panic!(
                "cannot mount the power-cut FUSE file system on {}: {e}. It needs /dev/fuse, \
                 and unless run as root the setuid helper fusermount3 (Debian package fuse3)",
                self.mountpoint.display()
            )
        })
    }

    /// Where the file system is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The power goes off: from now on every operation fails with EIO and
    /// changes nothing.
    pub fn cut(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(state.disk, Disk::Ideal) && !state.off {
            state.sync_everything();
        }
        state.off = true;
    }

    /// The durability-relevant calls made since the mount.
    pub fn calls(&self) -> Calls {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).calls
    }

    /// What the last restore kept of the pages written since their file's
    /// last sync (reordering disk only; empty before the first cut).
    pub fn last_cut(&self) -> CutReport {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_cut
            .clone()
    }

    /// The power comes back: unmounts (no kernel cache survives), keeps only
    /// what was synced, and mounts a fresh session on it. Whoever used the
    /// mount must be gone (killed and reaped) first.
    pub fn restore(&mut self) {
        self.cut();
        self.unmount();
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .restore();
        self.session = Some(self.spawn());
    }

    fn unmount(&mut self) {
        if let Some(session) = self.session.take()
            && let Err(e) = session.umount_and_join()
        {
            // Busy or already gone: detach it so the mount point is freed
            // anyway and the next mount starts from a clean slate.
            let path = std::ffi::CString::new(self.mountpoint.as_os_str().as_encoded_bytes())
                .expect("a path without NUL");
            // SAFETY: umount2 reads a valid NUL-terminated path.
            let detached = unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
            eprintln!("powerfs: unmount failed ({e}); lazy detach returned {detached}");
        }
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        self.unmount();
    }
}

#[cfg(test)]
mod tests {
    //! Proves the power-cut semantics through the real kernel: each test
    //! writes through the mount with ordinary std::fs calls, cuts the power,
    //! restores, and reads back only what was synced.

    use std::{
        fs::{self, File, OpenOptions},
        io::{Read, Seek, SeekFrom, Write},
        ops::Range,
        os::unix::fs::FileExt,
        path::Path,
    };

    use super::{CutReport, PAGE, Pages, PowerFs};

    fn sync_dir(dir: &Path) {
        File::open(dir).unwrap().sync_all().unwrap();
    }

    fn read(path: &Path) -> Option<Vec<u8>> {
        fs::read(path).ok()
    }

    /// A synced write survives; a later unsynced write and an unsynced file
    /// in a synced directory do not; the file whose name was synced but
    /// whose data never was survives empty.
    #[test]
    fn powerfs_keeps_only_synced_data() {
        let mut fs = PowerFs::mount();
        let a = fs.path().join("a");
        let mut file = File::create(&a).unwrap();
        file.write_all(&[1; 10_000]).unwrap();
        file.sync_data().unwrap();
        file.seek(SeekFrom::Start(5_000)).unwrap();
        file.write_all(&[2; 20_000]).unwrap(); // never synced
        let b = fs.path().join("b");
        fs::write(&b, b"never synced").unwrap();
        sync_dir(fs.path());
        drop(file);
        assert_eq!(
            read(&a).unwrap().len(),
            25_000,
            "before the cut all is seen"
        );

        fs.cut();
        assert!(fs::read(&a).is_err(), "the power is off: EIO");
        assert!(fs::write(fs.path().join("c"), b"x").is_err());
        fs.restore();

        assert_eq!(read(&a), Some(vec![1; 10_000]), "only the synced write");
        assert_eq!(read(&b), Some(Vec::new()), "name synced, data not: empty");
        assert_eq!(read(&fs.path().join("c")), None);
        // The file system works normally after the restore.
        let mut file = OpenOptions::new().append(true).open(&a).unwrap();
        file.write_all(&[3; 100]).unwrap();
        file.sync_all().unwrap();
        let mut back = Vec::new();
        File::open(&a).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), 10_100);
    }

    /// A created and fsynced file whose directory was never fsynced
    /// disappears; a rename survives only once its directory is fsynced;
    /// truncation rolls back to the synced size.
    #[test]
    fn powerfs_entries_need_a_directory_fsync() {
        let mut fs = PowerFs::mount();
        let root = fs.path().to_owned();
        let d = root.join("d");
        fs::create_dir(&d).unwrap();
        sync_dir(&root);
        let write_synced = |path: &Path, data: &[u8]| {
            let mut file = File::create(path).unwrap();
            file.write_all(data).unwrap();
            file.sync_all().unwrap();
        };
        write_synced(&d.join("old"), b"old");
        sync_dir(&d);
        write_synced(&d.join("orphan"), b"synced data, unsynced name");
        fs::rename(d.join("old"), d.join("new")).unwrap(); // d is not synced again
        write_synced(&root.join("moved"), b"moved");
        sync_dir(&root);
        fs::rename(root.join("moved"), root.join("renamed")).unwrap();
        sync_dir(&root);
        OpenOptions::new()
            .write(true)
            .open(root.join("renamed"))
            .unwrap()
            .set_len(1)
            .unwrap(); // not synced

        fs.cut();
        fs.restore();

        let names = |dir: &Path| {
            let mut names: Vec<_> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            read(&d.join("orphan")),
            None,
            "its directory was never fsynced"
        );
        assert_eq!(read(&d.join("old")), Some(b"old".to_vec()));
        assert_eq!(read(&d.join("new")), None, "the rename was never synced");
        assert_eq!(names(&d), ["old"]);
        assert_eq!(read(&root.join("moved")), None);
        assert_eq!(read(&root.join("renamed")), Some(b"moved".to_vec()));
        assert_eq!(names(&root), ["d", "renamed"]);
    }

    /// Large files sync page by page: many small synced appends to a file
    /// several MiB long survive exactly, and a sync costs little.
    #[test]
    fn powerfs_syncs_large_files_page_by_page() {
        let mut fs = PowerFs::mount();
        let path = fs.path().join("journal");
        let mut file = File::create(&path).unwrap();
        file.set_len(8 << 20).unwrap();
        file.sync_all().unwrap();
        sync_dir(fs.path());
        let started = std::time::Instant::now();
        for n in 0..2_000u64 {
            file.seek(SeekFrom::Start(n * 1_000)).unwrap();
            file.write_all(&[(n % 251) as u8; 1_000]).unwrap();
            file.sync_data().unwrap();
        }
        let elapsed = started.elapsed();
        file.write_all(&[9; 4_096]).unwrap(); // lost
        drop(file);
        fs.cut();
        fs.restore();
        let back = read(&path).unwrap();
        assert_eq!(back.len(), 8 << 20);
        for n in 0..2_000usize {
            assert!(
                back[n * 1_000..(n + 1) * 1_000]
                    .iter()
                    .all(|&b| b == (n % 251) as u8)
            );
        }
        assert!(back[2_000_000..].iter().all(|&b| b == 0));
        assert!(
            elapsed < std::time::Duration::from_secs(20),
            "2,000 fdatasyncs of an 8 MiB file took {elapsed:?}"
        );
    }

    /// Writes `data` at `offset` of `file`, and of `model`, the bytes the
    /// file should hold.
    fn write_at(file: &File, model: &mut Vec<u8>, offset: usize, data: &[u8]) {
        file.write_all_at(data, offset as u64).unwrap();
        if model.len() < offset + data.len() {
            model.resize(offset + data.len(), 0);
        }
        model[offset..offset + data.len()].copy_from_slice(data);
    }

    /// Page `index` as `version` writes it: no two pages or versions alike,
    /// and never zeros.
    fn page(version: u8, index: usize) -> Vec<u8> {
        vec![version * 50 + index as u8; PAGE]
    }

    /// Every page number in `pages`.
    fn numbers(pages: &Pages) -> Vec<usize> {
        pages.0.iter().cloned().flatten().collect()
    }

    /// Which state a page read back after a cut holds.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Kept {
        Old,
        New,
        /// The synced and the latest bytes are the same.
        Either,
    }

    /// The numbers of the pages seen to hold `which`.
    fn seen(kept: &[Kept], which: Kept) -> Vec<usize> {
        (0..kept.len()).filter(|&i| kept[i] == which).collect()
    }

    /// Each page of `back`, read after a cut, against the synced bytes `old`
    /// and the latest `new` (both zeros past their end), up to `back`'s
    /// size; panics on a page that is wholly neither.
    fn kept_pages(back: &[u8], old: &[u8], new: &[u8]) -> Vec<Kept> {
        let bytes = |of: &[u8], range: Range<usize>| -> Vec<u8> {
            range.map(|i| of.get(i).copied().unwrap_or(0)).collect()
        };
        (0..back.len().div_ceil(PAGE))
            .map(|index| {
                let range = index * PAGE..((index + 1) * PAGE).min(back.len());
                let here = &back[range.clone()];
                match (here == bytes(old, range.clone()), here == bytes(new, range)) {
                    (true, true) => Kept::Either,
                    (true, false) => Kept::Old,
                    (false, true) => Kept::New,
                    (false, false) => {
                        panic!("page {index} is neither wholly its synced nor its latest bytes")
                    }
                }
            })
            .collect()
    }

    /// One run on a reordering disk with `seed`: file `a` is synced with 12
    /// pages and 1,000 bytes, then overwritten in pages 1-3, partly in page
    /// 6, appended to (the rest of page 12, pages 13-14) and written past a
    /// hole (page 18), unsynced; `b` is synced and untouched since; `c` is
    /// synced but its name never is. Answers `a`'s synced bytes, its latest
    /// bytes, what the cut kept, and the report.
    fn overwrite_and_cut(seed: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>, CutReport) {
        let mut fs = PowerFs::mount_reordering(seed);
        let (a, b, c) = (
            fs.path().join("a"),
            fs.path().join("b"),
            fs.path().join("c"),
        );
        let file = File::create(&a).unwrap();
        let mut old = Vec::new();
        for index in 0..12 {
            write_at(&file, &mut old, index * PAGE, &page(1, index));
        }
        write_at(&file, &mut old, 12 * PAGE, &page(1, 12)[..1_000]);
        file.sync_data().unwrap();
        fs::write(&b, page(3, 0)).unwrap();
        File::open(&b).unwrap().sync_all().unwrap();
        sync_dir(fs.path());

        let mut new = old.clone();
        for index in 1..4 {
            write_at(&file, &mut new, index * PAGE, &page(2, index));
        }
        write_at(&file, &mut new, 6 * PAGE + 100, &page(2, 6)[..200]);
        write_at(&file, &mut new, 12 * PAGE + 1_000, &page(2, 12)[1_000..]);
        write_at(
            &file,
            &mut new,
            13 * PAGE,
            &[page(2, 13), page(2, 14)].concat(),
        );
        write_at(&file, &mut new, 18 * PAGE, &page(2, 18)[..500]);
        let mut orphan = File::create(&c).unwrap();
        orphan.write_all(&page(4, 0)).unwrap();
        orphan.sync_all().unwrap();
        drop((file, orphan));

        fs.cut();
        fs.restore();
        let back = read(&a).unwrap();
        assert_eq!(read(&b), Some(page(3, 0)), "b was synced after its write");
        assert_eq!(read(&c), None, "c's name was never synced");
        (old, new, back, fs.last_cut())
    }

    /// Proves the reordering disk through the kernel, over 24 seeds: after
    /// overwrites, a partial-page write, an append into the last synced page
    /// and a write past a hole, every page of the file read back is wholly
    /// its synced or wholly its latest bytes (so pages never written since
    /// the sync, and a file synced since its last write, are unchanged), its
    /// size is the synced or the latest, and a file whose name was never
    /// synced is gone. The report's counts agree with what is read back,
    /// both outcomes occur for pages and for sizes, and a seed run again
    /// keeps the same bytes.
    #[test]
    fn reordering_keeps_each_dirty_page_wholly_old_or_wholly_new() {
        let (mut pages_seen, mut sizes_seen) = (Vec::new(), Vec::new());
        let mut first = None;
        for seed in 0..24 {
            let (old, new, back, report) = overwrite_and_cut(seed);
            assert!(
                back.len() == old.len() || back.len() == new.len(),
                "seed {seed}: size {} is neither the synced nor the latest",
                back.len()
            );
            let kept = kept_pages(&back, &old, &new);
            let [file] = &report.files[..] else {
                panic!("seed {seed}: only a had unsynced pages: {report}");
            };
            assert_eq!(file.path, Path::new("a"));
            assert_eq!(
                file.kept_new.count() + file.kept_old.count(),
                8,
                "seed {seed}: pages 1-3, 6, 12-14 and 18 were written since the sync"
            );
            let mut overwritten = seen(&kept, Kept::New);
            overwritten.retain(|i| [1, 2, 3, 6].contains(i));
            assert_eq!(
                numbers(&file.rewritten_durable),
                overwritten,
                "seed {seed}: pages 1-3 and 6 overwrote durable data, page 12 appended: {report}"
            );
            if back.len() == new.len() {
                // Every dirty page is visible, and differs from its old self
                // unless both are zeros (the hole, pages 15-17, is not dirty).
                assert_eq!(numbers(&file.kept_new), seen(&kept, Kept::New));
                assert_eq!(numbers(&file.kept_old), seen(&kept, Kept::Old));
            }
            pages_seen.extend(kept);
            sizes_seen.push(back.len());
            if seed == 0 {
                first = Some(back);
            }
        }
        assert!(pages_seen.contains(&Kept::New) && pages_seen.contains(&Kept::Old));
        assert!(
            sizes_seen.contains(&(12 * PAGE + 1_000)) && sizes_seen.contains(&(18 * PAGE + 500))
        );
        assert_eq!(
            Some(overwrite_and_cut(0).2),
            first,
            "the same seed keeps the same pages"
        );
    }

    /// Proves that pages a truncate cut short or dropped are dirty like
    /// written ones, over 24 seeds: a synced file of 8 pages is truncated to
    /// 2 pages and 100 bytes, then page 5 is written (pages 3-4 are a hole);
    /// after the cut each page is wholly its synced or wholly its latest
    /// bytes (a dropped page kept new reads as zeros), the size is 8 or 6
    /// pages, and both outcomes occur.
    #[test]
    fn reordering_treats_pages_dropped_by_a_truncate_as_dirty() {
        let (mut pages_seen, mut sizes_seen) = (Vec::new(), Vec::new());
        for seed in 0..24 {
            let mut fs = PowerFs::mount_reordering(seed);
            let path = fs.path().join("t");
            let file = File::create(&path).unwrap();
            let mut old = Vec::new();
            for index in 0..8 {
                write_at(&file, &mut old, index * PAGE, &page(1, index));
            }
            file.sync_all().unwrap();
            sync_dir(fs.path());
            let mut new = old.clone();
            file.set_len(2 * PAGE as u64 + 100).unwrap();
            new.truncate(2 * PAGE + 100);
            write_at(&file, &mut new, 5 * PAGE, &page(2, 5));
            drop(file);

            fs.cut();
            fs.restore();
            let back = read(&path).unwrap();
            assert!(
                back.len() == old.len() || back.len() == new.len(),
                "seed {seed}: size {}",
                back.len()
            );
            let kept = kept_pages(&back, &old, &new);
            let report = fs.last_cut();
            let [file] = &report.files[..] else {
                panic!("seed {seed}: one file: {report}");
            };
            let mut dirty = [numbers(&file.kept_new), numbers(&file.kept_old)].concat();
            dirty.sort();
            assert_eq!(
                dirty,
                [2, 3, 4, 5, 6, 7],
                "seed {seed}: page 2 was cut short, pages 3-7 dropped, page 5 written"
            );
            assert_eq!(
                numbers(&file.rewritten_durable),
                numbers(&file.kept_new),
                "seed {seed}: every dirty page changes durable data"
            );
            if back.len() == old.len() {
                // All 8 pages are visible, and every dirty one changed.
                assert_eq!(
                    numbers(&file.kept_new),
                    seen(&kept, Kept::New),
                    "seed {seed}"
                );
                assert_eq!(
                    numbers(&file.kept_old),
                    seen(&kept, Kept::Old),
                    "seed {seed}"
                );
            }
            pages_seen.extend_from_slice(&kept[2..]);
            sizes_seen.push(back.len());
        }
        assert!(pages_seen.contains(&Kept::New) && pages_seen.contains(&Kept::Old));
        assert!(sizes_seen.contains(&(8 * PAGE)) && sizes_seen.contains(&(6 * PAGE)));
    }

    /// A version of the replaced file: 3 pages and `version` bytes of it.
    fn version_bytes(version: usize) -> Vec<u8> {
        vec![version as u8; 3 * PAGE + version]
    }

    /// The control: a writer that makes each step durable before counting
    /// it loses nothing on a reordering disk. Over 16 seeds it appends
    /// records of 1,500 bytes to a log (records share pages) with an
    /// fdatasync each, and replaces a file by writing a temporary one,
    /// fsyncing it, renaming it into place and fsyncing the directory, a
    /// random number of times; then a record and a version are in flight,
    /// unsynced, at the cut. Every synced record and the last synced
    /// version are intact, no kept page overwrote durable data, and the
    /// disk did reorder the work in flight.
    #[test]
    fn reordering_loses_nothing_a_correct_writer_synced() {
        let (mut kept_new, mut kept_old) = (0, 0);
        for seed in 0..16 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut fs = PowerFs::mount_reordering(seed);
            let (log_path, current, temporary) = (
                fs.path().join("log"),
                fs.path().join("current"),
                fs.path().join("current.tmp"),
            );
            let log = File::create(&log_path).unwrap();
            sync_dir(fs.path());
            let mut logged = Vec::new();
            let versions = rng.usize(1..10);
            for version in 1..=versions {
                let end = logged.len();
                write_at(&log, &mut logged, end, &[version as u8; 1_500]);
                log.sync_data().unwrap();
                let mut file = File::create(&temporary).unwrap();
                file.write_all(&version_bytes(version)).unwrap();
                file.sync_all().unwrap();
                fs::rename(&temporary, &current).unwrap();
                sync_dir(fs.path());
            }
            let mut in_flight = logged.clone();
            write_at(&log, &mut in_flight, logged.len(), &[0xee; 5_000]);
            fs::write(&temporary, version_bytes(versions + 1)).unwrap();
            fs::rename(&temporary, &current).unwrap();
            drop(log);

            fs.cut();
            fs.restore();
            let back = read(&log_path).unwrap();
            assert!(
                back.len() == logged.len() || back.len() == in_flight.len(),
                "seed {seed}: log size {}",
                back.len()
            );
            assert!(
                back[..logged.len()] == logged[..],
                "seed {seed}: a synced record changed"
            );
            assert_eq!(
                read(&current),
                Some(version_bytes(versions)),
                "seed {seed}: the last synced version"
            );
            let report = fs.last_cut();
            assert_eq!(report.rewritten_durable_pages(), 0, "seed {seed}: {report}");
            kept_new += report.kept_new();
            kept_old += report.kept_old();
        }
        assert!(
            kept_new > 0 && kept_old > 0,
            "the disk reordered the unsynced work ({kept_new} pages kept new, {kept_old} old)"
        );
    }
}
