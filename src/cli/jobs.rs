//! `repowire jobs …`: durable tracked work.

use super::{CmdResult, Ctx, Failure, term, text_arg};
use crate::api::{JobCreateReq, JobInfo, JobUpdateReq};
use crate::client::Client;
use crate::core::ErrorCode;
use crate::core::job::JobState;
use crate::core::time::fmt_ms;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum JobsCmd {
    /// Create a job. Without --assign, the circle's persona (else the
    /// built-in policy) routes it as soon as a suitable peer is online.
    Create(CreateArgs),
    /// Move a job: running, succeeded, failed, canceled; add a note, a result.
    Update(UpdateArgs),
    /// List jobs, newest first.
    List(ListArgs),
    /// Everything about a job, with its notes.
    Show { id: String },
    /// A job's state in one line.
    Status { id: String },
    /// A job's result (summary, data, error).
    Result { id: String },
    /// Cancel a job (work in progress: its assignee is asked to stop).
    Cancel {
        id: String,
        /// Why (kept as a note on the job, and told to the assignee).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Put a failed, timed-out or canceled job back in the queue.
    Retry { id: String },
    /// Create a job and wait for its end; prints the result. Exit 0 if it
    /// succeeded, 1 if it ended otherwise, 4 if the wait timed out.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    title: String,
    /// The prompt for whoever takes it (`-` reads stdin).
    #[arg(long)]
    brief: Option<String>,
    /// A tag (repeatable); the routing matches peers' tags.
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[arg(long)]
    priority: Option<i64>,
    /// Give it to this peer directly.
    #[arg(long)]
    assign: Option<String>,
    /// Who is told when it ends (default: you).
    #[arg(long)]
    owner: Option<String>,
    #[arg(long)]
    max_attempts: Option<i64>,
    /// Wait this long × the attempt number before a retry.
    #[arg(long, value_parser = super::duration_arg)]
    backoff: Option<std::time::Duration>,
    /// A free-form kind (build, review, docs…).
    #[arg(long)]
    kind: Option<String>,
    /// When it must be done: a delay (`2h`) or a time (RFC 3339); past
    /// it the job times out and the owner is told.
    #[arg(long, value_parser = parse_when)]
    deadline: Option<i64>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    id: String,
    #[arg(long, value_parser = parse_state)]
    state: Option<JobState>,
    #[arg(long)]
    phase: Option<String>,
    /// A progress note (timestamped).
    #[arg(long)]
    note: Option<String>,
    /// A one-line result summary.
    #[arg(long)]
    result: Option<String>,
    /// Structured result, as JSON.
    #[arg(long)]
    result_data: Option<String>,
    #[arg(long)]
    error: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_parser = parse_state)]
    state: Option<JobState>,
    #[arg(long)]
    owner: Option<String>,
    #[arg(long)]
    assignee: Option<String>,
    #[arg(long)]
    circle: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[arg(long, default_value_t = 0)]
    offset: u32,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    title: String,
    #[arg(long)]
    brief: Option<String>,
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[arg(long)]
    assign: Option<String>,
    #[arg(long, default_value = "1h", value_parser = super::duration_arg)]
    timeout: std::time::Duration,
}

/// `2h` from now, or an RFC 3339 time, as Unix ms.
fn parse_when(s: &str) -> Result<i64, String> {
    crate::core::schedule::parse_when(s, crate::core::time::now_ms()).map_err(|e| e.message)
}

fn parse_state(s: &str) -> Result<JobState, String> {
    JobState::parse(s).map_err(|e| e.message)
}

pub fn job_line(j: &JobInfo) -> String {
    format!(
        "{}  {:<10} {:<12} {}{}",
        j.job_id,
        j.state.as_str(),
        j.assignee.as_deref().unwrap_or("-"),
        term::field(&j.title),
        if j.phase.is_empty() {
            String::new()
        } else {
            format!("  [{}]", term::field(&j.phase))
        }
    )
}

fn job_detail(j: &JobInfo) -> String {
    let mut s = format!(
        "job:       {}\ntitle:     {}\nstate:     {}{}\ncircle:    {}\nowner:     {} (created by {})\nassignee:  {}\nattempts:  {} of {}\ntags:      {}\npriority:  {}\ncreated:   {}\nbrief:     {}",
        j.job_id,
        term::field(&j.title),
        j.state,
        if j.phase.is_empty() {
            String::new()
        } else {
            format!(" ({})", j.phase)
        },
        j.circle,
        j.owner,
        j.created_by,
        j.assignee.as_deref().unwrap_or("-"),
        j.attempts,
        j.max_attempts,
        term::field(&j.tags.join(", ")),
        j.priority,
        fmt_ms(j.created_at_ms),
        term::body(&j.brief)
    );
    if let Some(r) = &j.result_summary {
        s.push_str(&format!("\nresult:    {}", term::body(r)));
    }
    if let Some(e) = &j.error {
        s.push_str(&format!("\nerror:     {}", term::body(e)));
    }
    for n in &j.notes {
        s.push_str(&format!(
            "\n  {} {}: {}",
            fmt_ms(n.ts_ms),
            n.by,
            term::body(&n.text)
        ));
    }
    s
}

impl JobsCmd {
    pub async fn run(self, ctx: &Ctx) -> CmdResult {
        let c = ctx.client();
        match self {
            JobsCmd::Create(a) => create(ctx, &c, a).await,
            JobsCmd::Update(a) => update(ctx, &c, a).await,
            JobsCmd::List(a) => list(ctx, &c, a).await,
            JobsCmd::Show { id } => show(ctx, &c, id).await,
            JobsCmd::Status { id } => status(ctx, &c, id).await,
            JobsCmd::Result { id } => result(ctx, &c, id).await,
            JobsCmd::Cancel { id, reason } => cancel(ctx, &c, id, reason).await,
            JobsCmd::Retry { id } => retry(ctx, &c, id).await,
            JobsCmd::Run(a) => run(ctx, &c, a).await,
        }
    }
}

async fn create(ctx: &Ctx, c: &Client, a: CreateArgs) -> CmdResult {
    let CreateArgs {
        title,
        brief,
        tags,
        priority,
        assign,
        owner,
        max_attempts,
        backoff,
        kind,
        deadline,
    } = a;
    let req = JobCreateReq {
        title,
        brief: brief.map(text_arg).transpose()?,
        tags: (!tags.is_empty()).then_some(tags),
        priority,
        assign,
        owner,
        max_attempts,
        deadline_ms: deadline,
        backoff_ms: backoff.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        kind,
    };
    let j = c.create_job(&req).await?;
    ctx.out(&j, job_line);
    Ok(())
}

async fn update(ctx: &Ctx, c: &Client, a: UpdateArgs) -> CmdResult {
    let UpdateArgs {
        id,
        state,
        phase,
        note,
        result,
        result_data,
        error,
    } = a;
    let result_data = result_data
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| Failure::usage(format!("--result-data is not JSON: {e}")))?;
    let req = JobUpdateReq {
        state,
        phase,
        note,
        result,
        result_data,
        error,
    };
    let j = c.update_job(&id, &req).await?;
    ctx.out(&j, job_line);
    Ok(())
}

async fn list(ctx: &Ctx, c: &Client, a: ListArgs) -> CmdResult {
    let ListArgs {
        state,
        owner,
        assignee,
        circle,
        limit,
        offset,
    } = a;
    let mut q: Vec<(&str, String)> =
        vec![("limit", limit.to_string()), ("offset", offset.to_string())];
    if let Some(s) = state {
        q.push(("state", s.to_string()));
    }
    for (k, v) in [("owner", owner), ("assignee", assignee), ("circle", circle)] {
        if let Some(v) = v {
            q.push((k, v));
        }
    }
    let jobs = c.list_jobs(&q).await?;
    ctx.out(&jobs, |v| {
        if v.is_empty() {
            "no jobs".into()
        } else {
            v.iter().map(job_line).collect::<Vec<_>>().join("\n")
        }
    });
    Ok(())
}

async fn show(ctx: &Ctx, c: &Client, id: String) -> CmdResult {
    let j = c.job(&id).await?;
    ctx.out(&j, job_detail);
    Ok(())
}

async fn status(ctx: &Ctx, c: &Client, id: String) -> CmdResult {
    let j = c.job(&id).await?;
    let v = serde_json::json!({"job_id": j.job_id, "state": j.state, "phase": j.phase,
        "assignee": j.assignee, "attempts": j.attempts});
    ctx.out(&v, |_| job_line(&j));
    Ok(())
}

async fn result(ctx: &Ctx, c: &Client, id: String) -> CmdResult {
    let j = c.job(&id).await?;
    let v = serde_json::json!({"job_id": j.job_id, "state": j.state,
        "result_summary": j.result_summary, "result_data": j.result_data, "error": j.error});
    ctx.out(&v, |_| {
        let mut s = format!("{} is {}", j.job_id, j.state);
        if let Some(r) = &j.result_summary {
            s.push_str(&format!("\n{r}"));
        }
        if let Some(d) = &j.result_data {
            s.push_str(&format!("\n{d}"));
        }
        if let Some(e) = &j.error {
            s.push_str(&format!("\nerror: {e}"));
        }
        s
    });
    Ok(())
}

async fn cancel(ctx: &Ctx, c: &Client, id: String, reason: Option<String>) -> CmdResult {
    let j = c.cancel_job(&id, reason).await?;
    ctx.out(&j, job_line);
    Ok(())
}

async fn retry(ctx: &Ctx, c: &Client, id: String) -> CmdResult {
    let j = c.retry_job(&id).await?;
    ctx.out(&j, job_line);
    Ok(())
}

async fn run(ctx: &Ctx, c: &Client, a: RunArgs) -> CmdResult {
    let RunArgs {
        title,
        brief,
        tags,
        assign,
        timeout,
    } = a;
    let req = JobCreateReq {
        title,
        brief: brief.map(text_arg).transpose()?,
        tags: (!tags.is_empty()).then_some(tags),
        assign,
        ..Default::default()
    };
    let mut j = c.create_job(&req).await?;
    let deadline = std::time::Instant::now()
        .checked_add(timeout)
        .ok_or_else(|| Failure::usage("--timeout is too large"))?;
    while !j.state.is_terminal() {
        if std::time::Instant::now() > deadline {
            return Err(Failure::new(
                ErrorCode::Timeout,
                format!("job {} is still {} after {timeout:?}", j.job_id, j.state),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        j = c.job(&j.job_id).await?;
    }
    ctx.out(&j, job_detail);
    if j.state != JobState::Succeeded {
        return Err(Failure::new(
            ErrorCode::JobFailed,
            format!("job {} ended {}", j.job_id, j.state),
        ));
    }
    Ok(())
}
