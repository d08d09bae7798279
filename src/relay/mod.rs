//! The relay: two pumps between the client and the child, the child's lifecycle, and the
//! supervisor that carries out what no pump may wait for.
//!
//! The pumps (`pump`) are two plain threads doing blocking I/O, one per direction, as a byte
//! relay does: a message costs a read, the session's judgement and a write, with no hand-off to
//! an async runtime in between. The session's lock is held neither across I/O nor for
//! validation. The supervisor (this file) runs on the async runtime: it watches the child, the
//! client's end of input and signals, shuts the child down the way the MCP stdio transport asks
//! (close its input, wait, SIGTERM, wait, SIGKILL), and carries out the session's effects that
//! take time: timers (on tokio time, so tests can pause it) and approval commands. Their results
//! go back into the session under its lock, and the lines that come out are written by a
//! writer thread of the supervisor's own through the same two writers the pumps use.

pub mod child;
pub mod output;
pub mod pipe;
mod pump;
mod sink;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::approval::{self, Answer, ApproverJob};
use crate::config::ReloadMode;
use crate::error::Error;
use crate::os::process::{self, Stop, Tree};
use crate::os::shutdown::{Request, Requests};
use crate::reload::{Reloader, Update};
use crate::session::fleet::StoreJob;
use crate::session::{Effect, Session};
use crate::store::{Admission, FleetLimiter, Limit, StoreError};
use child::{ChildCommand, Spawned};
use output::{ChildWriter, ClientWriter};
use pipe::Pipe;
use pump::Pump;

/// How long the child gets to exit on its own after its input is closed, before SIGTERM. With
/// [`TERM_GRACE`] it keeps the whole shutdown within the 2 s that SDK clients give a server
/// before they signal it themselves.
pub const CLOSE_GRACE: Duration = Duration::from_millis(1000);
/// How long the child gets after SIGTERM before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_millis(800);
/// How long the child's last output may take to arrive once it has exited (a grandchild can
/// hold its stdout open).
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// How many approval commands may run at once. Past it, a question is not asked by command and
/// its call is refused, saying which cap: a client cannot make the proxy start programs
/// without bound.
pub const MAX_APPROVAL_COMMANDS: usize = 16;
/// How often the policy file is checked for changes: soon enough that an edit takes effect
/// before the next few calls, rarely enough to cost nothing (one stat a second).
const POLICY_FILE_CHECK: Duration = Duration::from_secs(1);

/// What the pumps tell the supervisor.
#[derive(Debug)]
enum Event {
    /// The client closed our stdin.
    ClientClosed,
    /// The client stopped reading our stdout.
    ClientGone,
    /// Wake the session at this instant.
    Wake(Instant),
    RunApprover(ApproverJob),
    CancelApprover(u64),
    CheckStore(StoreJob),
    /// Lines a pump could not write itself.
    Write(Vec<Effect<'static>>),
}

/// The next step of a shutdown in progress.
#[derive(Debug, Clone, Copy)]
enum Escalation {
    Term,
    Kill,
}

/// Runs the child and relays until it exits; returns the exit code the proxy should end with.
pub async fn run(
    command: &ChildCommand,
    session: Session,
    max_line: usize,
    mut reloader: Option<Reloader>,
    fleet: Option<FleetLimiter>,
) -> Result<u8, Error> {
    // Our own ends first: if stdin or stdout is unusable, no server is started.
    let client_input = Pipe::stdin()
        .context("cannot read stdin")
        .map_err(Error::Runtime)?;
    let writer = Arc::new(
        ClientWriter::stdout()
            .context("cannot write to stdout")
            .map_err(Error::Runtime)?,
    );
    let Spawned {
        mut child,
        tree,
        stdin,
        stdout,
    } = child::spawn(command).map_err(|source| Error::Spawn {
        command: command.display(),
        source,
    })?;
    info!(command = %command.display(), pid = child.id(), "started the MCP server");

    let session = Arc::new(Mutex::new(session));
    let child_writer = Arc::new(ChildWriter::new(stdin));
    let (events, mut event_rx) = mpsc::unbounded_channel();
    let (drained, drained_rx) = oneshot::channel::<()>();

    let pump = Pump {
        max_line,
        session: session.clone(),
        writer: writer.clone(),
        child: child_writer.clone(),
        events: events.clone(),
    };
    let upstream = pump.clone();
    let runtime_error =
        |what: &'static str| move |err| Error::Runtime(anyhow::Error::new(err).context(what));
    std::thread::Builder::new()
        .name("client-pump".into())
        .spawn(move || upstream.client_to_child(client_input))
        .map_err(runtime_error("cannot start the client pump thread"))?;
    std::thread::Builder::new()
        .name("server-pump".into())
        .spawn(move || {
            pump.child_to_client(stdout);
            let _ = drained.send(());
        })
        .map_err(runtime_error("cannot start the server pump thread"))?;
    let lines = Writer::start(session.clone(), writer.clone(), child_writer.clone())
        .map_err(runtime_error("cannot start the supervisor's writer thread"))?;

    let mut requests =
        Requests::new().map_err(runtime_error("cannot listen for shutdown requests"))?;
    // The policy file is looked at this often for changes made without a SIGHUP.
    let mut file_check = tokio::time::interval(POLICY_FILE_CHECK);
    file_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut escalation: Option<(tokio::time::Instant, Escalation)> = None;
    let mut closing = false;
    let mut timers = Timers::default();
    let mut approvers = Approvers::default();
    let mut stores = StoreChecks::new(fleet);

    let status = loop {
        let deadline = escalation.map(|(at, _)| at);
        let wake = timers.next();
        tokio::select! {
            status = child.wait() => break status.context("cannot wait for the MCP server").map_err(Error::Runtime)?,
            Some(event) = event_rx.recv() => match event {
                Event::ClientClosed | Event::ClientGone => {
                    if !closing {
                        debug!(?event, "the client is done; shutting the MCP server down");
                        closing = true;
                        escalation = Some((tokio::time::Instant::now() + CLOSE_GRACE, Escalation::Term));
                    }
                }
                Event::Wake(at) => timers.add(at),
                Event::RunApprover(job) => approvers.start(job),
                Event::CancelApprover(job) => approvers.cancel(job),
                Event::CheckStore(job) => stores.start(job),
                Event::Write(effects) => carry_out(effects, &lines, &mut timers, &mut approvers, &mut stores),
            },
            Some((job, answer)) = approvers.next() => {
                let mut effects = Vec::new();
                lock(&session).on_approver_done(job, answer, now(), &mut effects);
                carry_out(effects, &lines, &mut timers, &mut approvers, &mut stores);
            }
            Some((job, outcome)) = stores.next() => {
                let mut effects = Vec::new();
                lock(&session).on_store_done(job, outcome, now(), &mut effects);
                carry_out(effects, &lines, &mut timers, &mut approvers, &mut stores);
            }
            _ = sleep_until(wake), if wake.is_some() => {
                timers.pop_due(tokio::time::Instant::now());
                let mut effects = Vec::new();
                lock(&session).on_tick(now(), &mut effects);
                carry_out(effects, &lines, &mut timers, &mut approvers, &mut stores);
            }
            _ = file_check.tick(), if reloader.is_some() => {
                if let Some(reloader) = reloader
                    .as_mut()
                    .filter(|r| r.mode() == ReloadMode::File && r.changed())
                {
                    apply(reloader.reload("the policy file changed"), &session);
                }
            }
            request = requests.next() => match request {
                Request::Reload => match reloader.as_mut() {
                    Some(reloader) if reloader.mode() != ReloadMode::Never => {
                        apply(reloader.reload("SIGHUP"), &session);
                    }
                    Some(_) => info!("SIGHUP: [policy] reload = \"never\"; the policy stays as it is"),
                    None => {}
                },
                Request::Terminate | Request::Interrupt => {
                    let how = if request == Request::Terminate { Stop::Terminate } else { Stop::Interrupt };
                    info!(?request, "asked to stop; passing it on to the MCP server");
                    escalation = Some(stop(&tree, how, &child_writer));
                }
            },
            _ = sleep_until(deadline), if deadline.is_some() => {
                match escalation.take().map(|(_, step)| step) {
                    Some(Escalation::Term) => {
                        info!("the MCP server did not exit after its input closed; asking it to stop");
                        if tree.stop(Stop::Terminate) {
                            escalation = Some((tokio::time::Instant::now() + TERM_GRACE, Escalation::Kill));
                        } else {
                            warn!("the MCP server did not exit after its input closed; ending its process tree");
                            tree.kill();
                        }
                    }
                    Some(Escalation::Kill) => {
                        warn!("the MCP server did not exit when asked; killing its process tree");
                        tree.kill();
                    }
                    None => {}
                }
            }
        }
    };
    let how = process::describe(status);
    info!("the MCP server exited ({how})");
    // What it started ends with it: a launcher's grandchildren, a daemon it left behind.
    drop(tree);
    approvers.cancel_all();

    // Let its last lines through before answering what it left unanswered.
    if tokio::time::timeout(DRAIN_GRACE, drained_rx).await.is_err() {
        debug!("the MCP server's output stayed open after it exited");
    }
    // From here on the client pump answers new requests itself (the session knows the child is
    // gone); the process exits once the writer is closed.
    let mut unanswered = Vec::new();
    lock(&session).on_child_exit(&how, &mut unanswered);
    lines.send(unanswered);
    let finished = tokio::task::spawn_blocking(move || {
        lines.finish();
        writer.close();
    });
    let _ = finished.await;
    Ok(process::exit_code(status))
}

/// Asks the server's tree to stop: by a signal where the OS has one (then SIGKILL after
/// [`TERM_GRACE`]); where it has none (Windows), by closing its input as the MCP stdio transport
/// does (then the job ends after [`CLOSE_GRACE`]).
fn stop(tree: &Tree, how: Stop, child: &ChildWriter) -> (tokio::time::Instant, Escalation) {
    if tree.stop(how) {
        (tokio::time::Instant::now() + TERM_GRACE, Escalation::Kill)
    } else {
        child.close();
        (tokio::time::Instant::now() + CLOSE_GRACE, Escalation::Kill)
    }
}

/// Puts a reloaded policy in place, between two decisions (under the session's lock, which no
/// decision holds for long).
fn apply(update: Option<Update>, session: &Mutex<Session>) {
    if let Some(Update { policy, config }) = update {
        let mut session = lock(session);
        session.replace_policy(policy);
        session.update_settings(&config);
    }
}

fn lock(session: &Mutex<Session>) -> MutexGuard<'_, Session> {
    session.lock().expect("session lock")
}

/// The session's clock: tokio's, which tests can pause, read as a std `Instant`.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Carries out effects that came back to the supervisor: lines to its writer thread, the rest
/// here. One exhaustive `match`: nothing is dropped by omission.
fn carry_out(
    effects: Vec<Effect<'static>>,
    lines: &Writer,
    timers: &mut Timers,
    approvers: &mut Approvers,
    stores: &mut StoreChecks,
) {
    let mut writes = Vec::new();
    for effect in effects {
        match effect {
            Effect::Child { .. } | Effect::Client(_) => writes.push(effect),
            Effect::Wake(at) => timers.add(at),
            Effect::RunApprover(job) => approvers.start(job),
            Effect::CancelApprover(job) => approvers.cancel(job),
            Effect::CheckStore(job) => stores.start(job),
        }
    }
    if !writes.is_empty() {
        lines.send(writes);
    }
}

/// The instants the session asked to be woken at, earliest first.
#[derive(Debug, Default)]
pub struct Timers {
    due: BinaryHeap<Reverse<tokio::time::Instant>>,
}

impl Timers {
    pub fn add(&mut self, at: Instant) {
        self.due.push(Reverse(tokio::time::Instant::from_std(at)));
    }

    /// The earliest instant asked for.
    pub fn next(&self) -> Option<tokio::time::Instant> {
        self.due.peek().map(|Reverse(at)| *at)
    }

    /// Forgets every instant up to `now`: one tick serves them all.
    pub fn pop_due(&mut self, now: tokio::time::Instant) {
        while self.due.peek().is_some_and(|Reverse(at)| *at <= now) {
            self.due.pop();
        }
    }
}

/// Approval commands running, each as a task that can be aborted (which kills the program).
#[derive(Default)]
struct Approvers {
    running: JoinSet<(u64, Answer)>,
    handles: HashMap<u64, AbortHandle>,
}

impl Approvers {
    fn start(&mut self, job: ApproverJob) {
        let id = job.id;
        if self.handles.len() >= MAX_APPROVAL_COMMANDS {
            warn!(
                job = id,
                "{MAX_APPROVAL_COMMANDS} approval commands are running; this question is refused"
            );
            let handle = self.running.spawn(async move {
                let why = format!(
                    "{MAX_APPROVAL_COMMANDS} approval commands are already running (the cap on \
                     approval commands at once), so this one was not started"
                );
                (id, Answer::unclear(&why))
            });
            self.handles.insert(id, handle);
            return;
        }
        info!(job = id, command = ?job.command, "running the approval command");
        let handle = self
            .running
            .spawn(async move { (id, approval::command::run(job).await) });
        self.handles.insert(id, handle);
    }

    fn cancel(&mut self, job: u64) {
        if let Some(handle) = self.handles.remove(&job) {
            debug!(job, "withdrawing the approval command");
            handle.abort();
        }
    }

    fn cancel_all(&mut self) {
        self.running.abort_all();
        self.handles.clear();
    }

    /// The next command to finish; pending forever while none runs.
    async fn next(&mut self) -> Option<(u64, Answer)> {
        loop {
            match self.running.join_next().await {
                None => std::future::pending::<()>().await,
                Some(Ok((job, answer))) => {
                    self.handles.remove(&job);
                    return Some((job, answer));
                }
                // Aborted: its question was settled another way.
                Some(Err(_)) => continue,
            }
        }
    }
}

/// Questions to the store in flight, each a task of its own: many overlap, none waits for
/// another's round trip.
struct StoreChecks {
    fleet: Option<FleetLimiter>,
    running: JoinSet<(u64, Result<Admission, StoreError>)>,
}

impl StoreChecks {
    fn new(fleet: Option<FleetLimiter>) -> StoreChecks {
        StoreChecks {
            fleet,
            running: JoinSet::new(),
        }
    }

    fn start(&mut self, job: StoreJob) {
        let Some(fleet) = self.fleet.clone() else {
            // The config refuses a fleet-wide limit without a [store]; should one come anyway,
            // the call is refused as a store failure, never let through.
            self.running.spawn(async move {
                let error = StoreError::InvalidUrl {
                    store: "(none)".to_owned(),
                    reason: "no [store] is configured".to_owned(),
                };
                (job.id, Err(error))
            });
            return;
        };
        self.running.spawn(async move {
            let limit = Limit {
                key: &job.key,
                max: job.max,
                window: job.window,
            };
            let outcome = fleet.admit(limit).await;
            (job.id, outcome)
        });
    }

    /// The next answer; pending forever while no question is out.
    async fn next(&mut self) -> Option<(u64, Result<Admission, StoreError>)> {
        loop {
            match self.running.join_next().await {
                None => std::future::pending::<()>().await,
                Some(Ok(done)) => return Some(done),
                Some(Err(err)) => warn!("a store check failed to run: {err}"),
            }
        }
    }
}

/// The supervisor's writer: a thread that writes the lines of effects produced off the pumps,
/// in order, so that a slow client or child never blocks the runtime.
struct Writer {
    to_write: std::sync::mpsc::Sender<Vec<Effect<'static>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    fn start(
        session: Arc<Mutex<Session>>,
        client: Arc<ClientWriter>,
        child: Arc<ChildWriter>,
    ) -> io::Result<Writer> {
        let (to_write, written) = std::sync::mpsc::channel::<Vec<Effect<'static>>>();
        let thread = std::thread::Builder::new()
            .name("supervisor-writer".into())
            .spawn(move || {
                for effects in written {
                    for effect in effects {
                        write_one(effect, &session, &client, &child);
                    }
                }
            })?;
        Ok(Writer { to_write, thread })
    }

    fn send(&self, effects: Vec<Effect<'static>>) {
        if self.to_write.send(effects).is_err() {
            warn!("the supervisor's writer thread is gone; lines were not written");
        }
    }

    /// Waits until every line sent so far is written.
    fn finish(self) {
        drop(self.to_write);
        let _ = self.thread.join();
    }
}

fn write_one(
    effect: Effect<'static>,
    session: &Mutex<Session>,
    client: &ClientWriter,
    child: &ChildWriter,
) {
    match effect {
        Effect::Client(line) => {
            if client.write_lines(&line).is_err() {
                debug!("the client is gone; a line of the proxy's was not written");
            }
        }
        Effect::Child { line, request } => {
            if child.write_lines(&line, &[]).is_ok() {
                return;
            }
            let Some(request) = request else { return };
            let mut answers = Vec::new();
            lock(session).on_forward_failed(&request, &mut answers);
            for answer in answers {
                write_one(answer, session, client, child);
            }
        }
        // Only lines are sent to the writer (see `carry_out`).
        Effect::Wake(_)
        | Effect::RunApprover(_)
        | Effect::CancelApprover(_)
        | Effect::CheckStore(_) => {
            warn!("the supervisor's writer was handed an effect that is not a line");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timers run on tokio time: with the clock paused, a wake-up two minutes away fires when
    /// the test says two minutes have passed, not after two minutes of waiting.
    #[tokio::test(start_paused = true)]
    async fn timers_fire_on_tokio_time() {
        let mut timers = Timers::default();
        let start = tokio::time::Instant::now();
        timers.add((start + Duration::from_secs(120)).into_std());
        timers.add((start + Duration::from_secs(10)).into_std());
        assert_eq!(timers.next(), Some(start + Duration::from_secs(10)));
        sleep_until(timers.next()).await;
        assert_eq!(tokio::time::Instant::now(), start + Duration::from_secs(10));
        timers.pop_due(tokio::time::Instant::now());
        assert_eq!(timers.next(), Some(start + Duration::from_secs(120)));
        sleep_until(timers.next()).await;
        assert_eq!(
            tokio::time::Instant::now(),
            start + Duration::from_secs(120)
        );
        timers.pop_due(tokio::time::Instant::now());
        assert_eq!(timers.next(), None);
    }
}
