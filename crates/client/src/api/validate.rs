//! The input limits of each request body, checked at the daemon's edge.
//!
//! Every body type the daemon accepts implements [`Validate`]; the body
//! extractor calls it before any handler runs, so a field over a limit of
//! [`repowire_core::limits::TABLE`] never reaches the store. Rules that need
//! state (does the peer exist, is it in the caller's circle) stay in the
//! daemon's services.

use super::*;
use repowire_core::error::{Error, Result};
use repowire_core::limits::{CONFIRM_IDS, Checker, PREVIOUS_ASSIGNEES};
use repowire_core::mesh::{JobInput, ReviewInput};

/// A request body whose fields are within the limits.
pub trait Validate {
    fn validate(&self, c: &Checker) -> Result<()>;
}

impl Validate for RegisterReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.name("peer name", &self.name)?;
        c.opt_name("circle", &self.circle)?;
        c.opt_line("backend", &self.backend)?;
        c.path("project_path", &self.project_path)?;
        c.opt_tags(&self.tags)?;
        c.opt_text("description", &self.description)?;
        c.opt_line("route", &self.route)?;
        c.opt_line("tmux_claim", &self.tmux_claim)
    }
}

impl Validate for UpdatePeerReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.opt_text("description", &self.description)?;
        c.opt_tags(&self.tags)
    }
}

impl Validate for ClockReq {
    fn validate(&self, _: &Checker) -> Result<()> {
        if (0..=365 * 86_400_000).contains(&self.advance_ms) {
            Ok(())
        } else {
            Err(Error::bad_request(format!(
                "advance_ms {} is out of range: 0 to one year",
                self.advance_ms
            )))
        }
    }
}

impl Validate for PruneReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.opt_name("circle", &self.circle)
    }
}

impl Validate for SpawnReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.path("path", &Some(self.path.clone()))?;
        c.opt_name("backend", &self.backend)?;
        c.opt_name("peer name", &self.name)?;
        c.opt_name("circle", &self.circle)?;
        c.opt_line("command", &self.command)?;
        c.path("server", &self.server)?;
        c.opt_text("message", &self.message)
    }
}

impl Validate for KillReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.address("name", &self.name)?;
        c.opt_name("circle", &self.circle)
    }
}

impl Validate for AskReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.address("to", &self.to)?;
        c.opt_name("circle", &self.circle)?;
        c.text("text", &self.text)?;
        c.opt_id("reply_to", &self.reply_to)
    }
}

impl Validate for AskManyReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.count("recipients", &self.to, c.fanout)?;
        self.to.iter().try_for_each(|t| c.address("to", t))?;
        c.opt_name("circle", &self.circle)?;
        c.text("text", &self.text)
    }
}

impl Validate for AckReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.opt_text("message", &self.message)
    }
}

impl Validate for DeclineReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.text("reason", &self.reason)
    }
}

impl Validate for AnswerReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.text("text", &self.text)
    }
}

impl Validate for NotifyReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.address("to", &self.to)?;
        c.opt_name("circle", &self.circle)?;
        c.text("text", &self.text)
    }
}

impl Validate for BroadcastReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.opt_name("circle", &self.circle)?;
        c.text("text", &self.text)
    }
}

impl Validate for ConfirmReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.count("ids", &self.ids, CONFIRM_IDS)?;
        self.ids.iter().try_for_each(|i| c.id("id", i))
    }
}

impl Validate for PushedReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.count("ids", &self.ids, CONFIRM_IDS)?;
        self.ids.iter().try_for_each(|i| c.id("id", i))
    }
}

impl Validate for UsePersonaReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.line("persona name", &self.name)?;
        c.opt_name("circle", &self.circle)
    }
}

impl Validate for CircleReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.opt_name("circle", &self.circle)
    }
}

impl Validate for JobInput {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.id("job id", &self.id)?;
        c.line("title", &self.title)?;
        c.text("brief", &self.brief)?;
        c.tags(&self.tags)?;
        if !self.creator.is_empty() {
            c.address("creator", &self.creator)?;
        }
        c.count(
            "previous_assignees",
            &self.previous_assignees,
            PREVIOUS_ASSIGNEES,
        )?;
        self.previous_assignees
            .iter()
            .try_for_each(|p| c.address("previous assignee", p))
    }
}

impl Validate for ReviewInput {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.reference(&self.reference)?;
        c.sha("head_sha", &self.head_sha)?;
        for (what, who) in [
            ("author", &self.author),
            ("requested_by", &self.requested_by),
        ] {
            if !who.is_empty() {
                c.address(what, who)?;
            }
        }
        c.tags(&self.tags)
    }
}

impl Validate for DecideReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.opt_name("circle", &self.circle)?;
        self.job.as_ref().map_or(Ok(()), |j| j.validate(c))?;
        self.review.as_ref().map_or(Ok(()), |r| r.validate(c))
    }
}

impl Validate for JobCreateReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.line("title", &self.title)?;
        c.opt_text("brief", &self.brief)?;
        c.opt_line("kind", &self.kind)?;
        c.opt_tags(&self.tags)?;
        c.opt_address("assign", &self.assign)?;
        c.opt_address("owner", &self.owner)
    }
}

impl Validate for JobCancelReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.opt_text("reason", &self.reason)
    }
}

impl Validate for JobUpdateReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.opt_line("phase", &self.phase)?;
        c.opt_text("note", &self.note)?;
        c.opt_text("result", &self.result)?;
        c.opt_text("error", &self.error)?;
        self.result_data
            .as_ref()
            .map_or(Ok(()), |v| c.result_data(v))
    }
}

impl Validate for ReviewRequestReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.reference(&self.reference)?;
        c.sha("head_sha", &self.head_sha)?;
        c.opt_line("title", &self.title)?;
        c.opt_address("author", &self.author)?;
        c.opt_tags(&self.tags)
    }
}

impl Validate for ReviewRefReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.reference(&self.reference)?;
        self.sha.as_deref().map_or(Ok(()), |s| c.sha("sha", s))?;
        c.opt_line("verdict", &self.verdict)?;
        c.opt_text("notes", &self.notes)
    }
}

impl Validate for ScheduleReq {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.address("to", &self.to)?;
        c.opt_name("circle", &self.circle)?;
        if self.kind == Some(repowire_core::schedule::ScheduleKind::Job) {
            // The text is the title of the job each fire creates.
            c.line("text (the job's title)", &self.text)?;
        }
        c.text("text", &self.text)?;
        c.opt_line("fire_at", &self.fire_at)?;
        c.opt_line("cron", &self.cron)?;
        c.opt_line("tz", &self.tz)?;
        c.opt_line("persona", &self.persona)
    }
}

/// Bodies with nothing over a limit to check (flags, numbers, enums).
macro_rules! nothing_to_check {
    ($($t:ty),*) => {$(
        impl Validate for $t {
            fn validate(&self, _: &Checker) -> Result<()> {
                Ok(())
            }
        }
    )*};
}

nothing_to_check!(HeartbeatReq, ClaimReq, LeaseReq, DispatchReq);
