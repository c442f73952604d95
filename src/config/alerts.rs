//! Reloader's post-reload alerts, as its `ALERT_*` environment variables configure them
//! (`runtime::reporter::alerts` sends them).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sink {
    Slack,
    Teams,
    GChat,
    Raw,
}

impl Sink {
    pub(crate) fn parse(s: &str) -> Sink {
        match s.trim().to_ascii_lowercase().as_str() {
            "slack" => Sink::Slack,
            "teams" => Sink::Teams,
            "gchat" => Sink::GChat,
            _ => Sink::Raw,
        }
    }
    pub(crate) fn label(self) -> &'static str {
        match self {
            Sink::Slack => "slack",
            Sink::Teams => "teams",
            Sink::GChat => "gchat",
            Sink::Raw => "webhook",
        }
    }
}

/// Alert settings, read from the environment as Reloader does.
#[derive(Clone, Debug)]
pub(crate) struct AlertConfig {
    pub(crate) url: String,
    pub(crate) sink: Sink,
    pub(crate) proxy: Option<String>,
    pub(crate) additional_info: Option<String>,
}

impl AlertConfig {
    /// `None` unless `ALERT_ON_RELOAD` is exactly `true`; an error when the URL is missing.
    pub(crate) fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<AlertConfig>, String> {
        if get("ALERT_ON_RELOAD").as_deref() != Some("true") {
            return Ok(None);
        }
        let url = get("ALERT_WEBHOOK_URL").map(|u| u.trim().to_string()).filter(|u| !u.is_empty());
        let Some(url) = url else {
            return Err("ALERT_ON_RELOAD is true but ALERT_WEBHOOK_URL is not set; no alerts will be sent".into());
        };
        Ok(Some(AlertConfig {
            url,
            sink: Sink::parse(&get("ALERT_SINK").unwrap_or_default()),
            proxy: get("ALERT_WEBHOOK_PROXY").map(|p| p.trim().to_string()).filter(|p| !p.is_empty()),
            additional_info: get("ALERT_ADDITIONAL_INFO"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_env() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert!(AlertConfig::from_env(env(&[("ALERT_ON_RELOAD", "True")])).unwrap().is_none());
        assert!(AlertConfig::from_env(env(&[("ALERT_ON_RELOAD", "true")])).is_err());
        let c = AlertConfig::from_env(env(&[
            ("ALERT_ON_RELOAD", "true"),
            ("ALERT_WEBHOOK_URL", " http://x/ "),
            ("ALERT_SINK", " Slack "),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((c.url.as_str(), c.sink, c.additional_info), ("http://x/", Sink::Slack, None));
        assert_eq!(Sink::parse("raw"), Sink::Raw);
    }
}
