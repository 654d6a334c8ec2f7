//! Renderers for socklab's report model, and the report folder they write.
//!
//! Every renderer reads only [`socklab_model::report::Report`]: `report.json` is the
//! model itself ([`json`]), `report.md` a summary for pull requests and CI job summaries
//! ([`markdown`]), `index.html` a self-contained page with SVG charts and timelines
//! ([`html`], [`charts`], [`figures`], [`panels`]), `junit.xml` one test case per check
//! ([`junit`]). [`folder`] writes them all into a report folder atomically; [`load`]
//! reads a `report.json` back, within bounds.

pub mod charts;
pub mod compare;
pub mod figures;
pub mod folder;
pub mod html;
pub mod json;
pub mod junit;
pub mod load;
pub mod markdown;
pub mod panels;
pub mod sweep;
mod view;

use std::borrow::Cow;

use socklab_model::report::Report;
use socklab_model::text::printable_text;
use thiserror::Error;

pub use folder::{check_out, rerender_report, write_report, write_report_with};
pub use load::{load_report, load_report_at};

/// A renderer that failed.
///
/// Messages include their cause, so `source()` is `None`: a chain printer such as
/// anyhow's `{:#}` shows each cause once.
#[derive(Debug, Error)]
pub enum RenderError {
    /// The JSON model could not be written or read.
    #[error("report.json: {0}")]
    Json(serde_json::Error),
    /// A template failed to render.
    #[error("{file}: template error: {error}")]
    Template {
        /// The output file being rendered.
        file: &'static str,
        /// What minijinja said.
        error: minijinja::Error,
    },
    /// The JUnit XML could not be serialised.
    #[error("junit.xml: {0}")]
    Junit(quick_junit::SerializeError),
}

impl From<serde_json::Error> for RenderError {
    fn from(error: serde_json::Error) -> Self {
        RenderError::Json(error)
    }
}

impl From<quick_junit::SerializeError> for RenderError {
    fn from(error: quick_junit::SerializeError) -> Self {
        RenderError::Junit(error)
    }
}

/// One rendered file of a report folder.
pub struct RenderedFile {
    /// Name inside the folder.
    pub name: &'static str,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// Renders every file of a report folder.
///
/// # Errors
/// [`RenderError`] naming the file that failed.
pub fn render_all(report: &Report) -> Result<Vec<RenderedFile>, RenderError> {
    Ok(vec![
        RenderedFile { name: "report.json", bytes: json::render(report)?.into_bytes() },
        RenderedFile { name: "report.md", bytes: markdown::render(report)?.into_bytes() },
        RenderedFile { name: "index.html", bytes: html::render(report)?.into_bytes() },
        RenderedFile { name: "junit.xml", bytes: junit::render(report)?.into_bytes() },
    ])
}

/// Renders `page` through `template` as output file `file`, in `env` (which holds the
/// syntax and filters the template needs).
///
/// The rendered page passes through [`printable_text`] as a whole: a control character a
/// peer or a user wrote (an `ESC` in a server's reply, a `BEL` in a parameter value) is
/// shown escaped (`\x1b`) whichever value, filter or safe string (an SVG chart, a table
/// cell) carried it onto the page. Templates escape for their format (HTML, Markdown);
/// neither format escapes control characters, and socklab's templates hold none.
pub(crate) fn render_template<T: serde::Serialize>(
    mut env: minijinja::Environment<'_>,
    file: &'static str,
    template: &'static str,
    page: &T,
) -> Result<String, RenderError> {
    let template_error = |error| RenderError::Template { file, error };
    env.add_template(file, template).map_err(template_error)?;
    let text = env
        .get_template(file)
        .and_then(|t| t.render(minijinja::value::Serde(page)))
        .map_err(template_error)?;
    Ok(match printable_text(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(escaped) => escaped,
    })
}
