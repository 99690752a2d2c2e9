//! The demo application: its pages, handlers and router. `main.rs` picks
//! the cache and the session store; the tests build the same app in
//! memory with [`Setup::in_memory`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use covet::cache::http::HttpCacheLayer;
use covet::cache::{Cache, CacheStatus, fn_stats};
use covet::session::{
    CsrfLayer, CsrfToken, Flashes, Level, MemoryStore, Session, SessionConfig, SessionLayer,
    SessionState, SessionStore,
};
use minijinja::{Environment, Value, context};
use serde::{Deserialize, Serialize};

/// What the app runs on.
#[derive(Clone)]
pub(crate) struct Setup {
    /// The cache of the `#[cached]` functions (set as the default cache)
    /// and of the HTTP response cache.
    pub(crate) cache: Cache,
    /// Where sessions live.
    pub(crate) store: Arc<dyn SessionStore>,
    /// Cookie and timeout settings.
    pub(crate) session_config: SessionConfig,
    /// How the home page names the cache ("in memory", "Redis at ...").
    pub(crate) cache_label: String,
    /// How the home page names the session store.
    pub(crate) session_label: String,
}

impl Setup {
    /// Everything in this process: `Cache::memory()` and a `MemoryStore`,
    /// cookies without `Secure` (plain HTTP on loopback).
    pub(crate) fn in_memory() -> Setup {
        Setup {
            cache: Cache::memory(),
            store: Arc::new(MemoryStore::new()),
            session_config: SessionConfig::default().with_secure(false),
            cache_label: "memory (moka)".to_owned(),
            session_label: "memory".to_owned(),
        }
    }
}

#[derive(Clone)]
struct AppState {
    setup: Setup,
    pages: Arc<Environment<'static>>,
    sessions: SessionLayer,
}

/// The templates, compiled in.
fn pages() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("home.html", include_str!("templates/home.html")),
        ("catalogue.html", include_str!("templates/catalogue.html")),
        ("http_cache.html", include_str!("templates/http_cache.html")),
        ("login.html", include_str!("templates/login.html")),
        ("cart.html", include_str!("templates/cart.html")),
        ("sessions.html", include_str!("templates/sessions.html")),
        ("stats.html", include_str!("templates/stats.html")),
    ] {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name}: {e}"));
    }
    env
}

/// A rendered page, or a 500 that says which template failed.
fn render(state: &AppState, name: &str, ctx: Value) -> Response {
    match state.pages.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response()
        }
    }
}

/// What every page shows: the user, the cart size, the flash messages
/// (taken: each is shown once) and the CSRF token for its forms.
fn common(session: &Session, token: &CsrfToken, flashes: &Flashes) -> Value {
    let cart_count = session
        .get::<serde_json::Value>("cart")
        .ok()
        .flatten()
        .and_then(|c| c.get("items").and_then(|i| i.as_array()).map(Vec::len))
        .unwrap_or(0);
    let flashes: Vec<Value> = flashes
        .iter()
        .map(|f| context! { level => f.level.to_string(), message => f.message.clone() })
        .collect();
    context! {
        user => session.user_id(),
        cart_count,
        flashes,
        csrf => token.to_string(),
    }
}

// ---------------------------------------------------------------------
// The catalogue: `#[cached]` functions.

/// One product of the catalogue.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Product {
    id: u32,
    name: String,
    price_cents: u32,
    blurb: String,
}

const CATALOGUE: [(u32, &str, u32, &str); 6] = [
    (1, "Espresso beans", 1450, "Dark roast, 1 kg."),
    (2, "Hand grinder", 6900, "Ceramic burrs, 40 settings."),
    (3, "Pour-over kettle", 4200, "Gooseneck, 1 litre."),
    (4, "Paper filters", 590, "100 pieces, size 02."),
    (5, "Milk jug", 1800, "Stainless steel, 600 ml."),
    (6, "Scale", 3100, "0.1 g resolution, with a timer."),
];

/// A product from a slow "database" (150 ms), cached for a minute.
#[covet::cached(ttl = 60, key = "product:{id}")]
pub(crate) async fn product(id: u32) -> Option<Product> {
    tokio::time::sleep(Duration::from_millis(150)).await;
    CATALOGUE
        .iter()
        .find(|(i, ..)| *i == id)
        .map(|&(id, name, price_cents, blurb)| Product {
            id,
            name: name.to_owned(),
            price_cents,
            blurb: blurb.to_owned(),
        })
}

async fn catalogue(
    State(state): State<AppState>,
    session: Session,
    token: CsrfToken,
    flashes: Flashes,
) -> Response {
    let started = Instant::now();
    let lookups = CATALOGUE.iter().map(|&(id, ..)| async move {
        let t = Instant::now();
        let (p, status) = product_with_status(id).await;
        (p, status, t.elapsed())
    });
    let mut products = Vec::new();
    for (p, status, took) in futures_util::future::join_all(lookups).await {
        let Some(p) = p else { continue };
        let status = match status {
            s if s.from_cache() => "HIT",
            CacheStatus::Miss | CacheStatus::Refreshed => "MISS",
            s => s.as_str(),
        };
        products.push(context! {
            id => p.id,
            name => p.name,
            blurb => p.blurb,
            price => format!("€{}.{:02}", p.price_cents / 100, p.price_cents % 100),
            status,
            took => format!("{:.1} ms", took.as_secs_f64() * 1e3),
        });
    }
    let ctx = context! {
        products,
        total_ms => started.elapsed().as_millis(),
        ..common(&session, &token, &flashes)
    };
    render(&state, "catalogue.html", ctx)
}

async fn forget(Path(id): Path<u32>, session: Session) -> Redirect {
    match product_invalidate(id).await {
        Ok(_) => session.flash(
            format!("Product {id} dropped from the cache: its next read is a miss."),
            Level::Info,
        ),
        Err(e) => session.flash(format!("The cache failed: {e}"), Level::Error),
    }
    Redirect::to("/catalogue")
}

// ---------------------------------------------------------------------
// The HTTP response cache.

async fn http_cache_page(
    State(state): State<AppState>,
    session: Session,
    token: CsrfToken,
    flashes: Flashes,
) -> Response {
    render(
        &state,
        "http_cache.html",
        common(&session, &token, &flashes),
    )
}

/// A slow page (200 ms) that shared caches (`HttpCacheLayer`) may keep
/// for 30 seconds (`s-maxage`) and browsers must fetch again each time
/// (`max-age=0`), so the page that fetches it always sees the shared
/// cache's answer.
async fn news() -> impl IntoResponse {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (
        [(header::CACHE_CONTROL, "public, max-age=0, s-maxage=30")],
        format!(
            "News rendered at {:02}:{:02}:{:02} UTC",
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60
        ),
    )
}

// ---------------------------------------------------------------------
// Logging in and out.

async fn home(
    State(state): State<AppState>,
    session: Session,
    token: CsrfToken,
    flashes: Flashes,
) -> Response {
    let ctx = context! {
        cache_label => state.setup.cache_label.clone(),
        session_label => state.setup.session_label.clone(),
        ..common(&session, &token, &flashes)
    };
    render(&state, "home.html", ctx)
}

async fn login_page(
    State(state): State<AppState>,
    session: Session,
    token: CsrfToken,
    flashes: Flashes,
) -> Response {
    render(&state, "login.html", common(&session, &token, &flashes))
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
}

/// Logs in (`CsrfLayer` checked the token; the id rotates) and says so on
/// the next page.
async fn login(session: Session, Form(form): Form<LoginForm>) -> Response {
    let user = form.user.trim();
    if user.is_empty() || user.len() > 64 {
        session.flash("Type a name (up to 64 characters).", Level::Warning);
        return Redirect::to("/login").into_response();
    }
    if let Err(e) = session.login(user) {
        tracing::warn!(error = %e, "login failed");
        return (StatusCode::INTERNAL_SERVER_ERROR, "login failed").into_response();
    }
    session.flash(
        format!("Welcome, {user}! You are logged in."),
        Level::Success,
    );
    Redirect::to("/").into_response()
}

/// Ends the session (record deleted, cookie removed); the goodbye message
/// belongs to the next, new session.
async fn logout(session: Session) -> Redirect {
    session.logout();
    Redirect::to("/goodbye")
}

async fn goodbye(session: Session) -> Redirect {
    session.flash("You are logged out.", Level::Info);
    Redirect::to("/login")
}

// ---------------------------------------------------------------------
// The cart: `SessionState<Cart>`.

/// A shopping cart kept in the session under the key `cart`.
#[covet::session_state(key = "cart")]
#[derive(Default)]
pub(crate) struct Cart {
    items: Vec<String>,
}

async fn cart(
    State(state): State<AppState>,
    cart: SessionState<Cart>,
    session: Session,
    token: CsrfToken,
    flashes: Flashes,
) -> Response {
    let ctx = context! {
        items => cart.items.clone(),
        ..common(&session, &token, &flashes)
    };
    render(&state, "cart.html", ctx)
}

#[derive(Deserialize)]
struct AddForm {
    item: String,
}

async fn add_to_cart(
    mut cart: SessionState<Cart>,
    session: Session,
    Form(form): Form<AddForm>,
) -> Redirect {
    let item: String = form.item.chars().take(80).collect();
    session.flash(format!("Added {item} to the cart."), Level::Success);
    cart.items.push(item);
    Redirect::to("/catalogue")
}

async fn clear_cart(mut cart: SessionState<Cart>) -> Redirect {
    cart.items.clear();
    Redirect::to("/cart")
}

// ---------------------------------------------------------------------
// Your sessions.

/// "3 s ago", "in 59 min".
fn relative(t: Option<SystemTime>) -> String {
    let Some(t) = t else {
        return "-".to_owned();
    };
    let now = SystemTime::now();
    let (d, past) = match now.duration_since(t) {
        Ok(d) => (d, true),
        Err(e) => (e.duration(), false),
    };
    let s = d.as_secs();
    let amount = match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86400),
    };
    if past {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

async fn sessions_page(
    State(state): State<AppState>,
    session: Session,
    token: CsrfToken,
    flashes: Flashes,
) -> Response {
    let base = common(&session, &token, &flashes);
    let Some(user) = session.user_id() else {
        return render(&state, "sessions.html", base);
    };
    let current: Option<String> = session
        .id()
        .map(|id| id.storage_key().chars().take(12).collect());
    let ctx = match state.setup.store.list_user_sessions(&user).await {
        Ok(list) => {
            let sessions: Vec<Value> = list
                .iter()
                .map(|s| {
                    context! {
                        id_hash => s.id_hash.clone(),
                        current => current.as_deref() == Some(s.id_hash.as_str()),
                        agent => s.user_agent.clone().unwrap_or_else(|| "-".to_owned()),
                        created => relative(s.created_at),
                        last_seen => relative(s.last_seen),
                        expires => relative(Some(s.expires_at)),
                    }
                })
                .collect();
            context! { sessions, ..base }
        }
        Err(e) => context! {
            error => format!("This session store cannot list sessions: {e}"),
            ..base
        },
    };
    render(&state, "sessions.html", ctx)
}

async fn end_others(session: Session) -> Redirect {
    match session.end_other_sessions().await {
        Ok(n) => session.flash(format!("Ended {n} other session(s)."), Level::Success),
        Err(e) => session.flash(
            format!("Could not end the other sessions: {e}"),
            Level::Warning,
        ),
    }
    Redirect::to("/sessions")
}

// ---------------------------------------------------------------------
// Statistics.

fn percent(rate: f64) -> String {
    format!("{:.1} %", rate * 100.0)
}

/// The figures of `/stats` and `/stats.json`.
fn figures(state: &AppState) -> serde_json::Value {
    let cache = &state.setup.cache;
    let s = cache.stats();
    let fns: Vec<serde_json::Value> = fn_stats()
        .map(|f| {
            serde_json::json!({
                "name": f.path.rsplit("::").next().unwrap_or(&f.path),
                "path": f.path,
                "hits": f.hits,
                "misses": f.misses,
                "stale": f.stale,
                "hit_rate": f.hit_rate(),
                "mean_body_ms": f.body.mean().as_secs_f64() * 1e3,
            })
        })
        .collect();
    let sessions: serde_json::Map<String, serde_json::Value> = state
        .sessions
        .stats()
        .counts()
        .map(|(name, n)| (name.to_owned(), n.into()))
        .collect();
    serde_json::json!({
        "backend": cache.backend().name(),
        "namespace": cache.namespace(),
        "hits": s.hits,
        "misses": s.misses,
        "sets": s.sets,
        "evictions": s.evictions,
        "errors": s.errors,
        "decode_errors": s.decode_errors,
        "coalesced": s.coalesced,
        "http_hits": s.http_hits,
        "http_misses": s.http_misses,
        "hit_rate": s.hit_rate(),
        "fns": fns,
        "sessions": sessions,
    })
}

async fn stats_json(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(figures(&state))
}

async fn stats_page(
    State(state): State<AppState>,
    session: Session,
    token: CsrfToken,
    flashes: Flashes,
) -> Response {
    let f = figures(&state);
    let fns: Vec<Value> = f["fns"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|x| {
            context! {
                name => x["name"].as_str().unwrap_or("?").to_owned(),
                hits => x["hits"].as_u64(),
                misses => x["misses"].as_u64(),
                hit_rate => percent(x["hit_rate"].as_f64().unwrap_or(0.0)),
                body => format!("{:.1} ms", x["mean_body_ms"].as_f64().unwrap_or(0.0)),
            }
        })
        .collect();
    let sessions: Vec<(String, u64)> = f["sessions"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let ctx = context! {
        cache => context! {
            backend => f["backend"].as_str().unwrap_or("?").to_owned(),
            namespace => f["namespace"].as_str().unwrap_or("?").to_owned(),
            hit_rate => percent(f["hit_rate"].as_f64().unwrap_or(0.0)),
            hits => f["hits"].as_u64(),
            misses => f["misses"].as_u64(),
            sets => f["sets"].as_u64(),
            http_hits => f["http_hits"].as_u64(),
            http_misses => f["http_misses"].as_u64(),
            errors => f["errors"].as_u64(),
        },
        fns,
        sessions,
        session_label => state.setup.session_label.clone(),
        ..common(&session, &token, &flashes)
    };
    render(&state, "stats.html", ctx)
}

/// The whole app on `setup`.
pub(crate) fn app(setup: Setup) -> Router {
    let sessions =
        SessionLayer::from_shared(setup.store.clone()).with_config(setup.session_config.clone());
    let http_cache = HttpCacheLayer::new(setup.cache.clone());
    let state = AppState {
        setup,
        pages: Arc::new(pages()),
        sessions: sessions.clone(),
    };
    Router::new()
        .route("/", get(home))
        .route("/catalogue", get(catalogue))
        .route("/catalogue/{id}/forget", post(forget))
        .route("/http-cache", get(http_cache_page))
        .route("/news", get(news))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/goodbye", get(goodbye))
        .route("/cart", get(cart))
        .route("/cart/add", post(add_to_cart))
        .route("/cart/clear", post(clear_cart))
        .route("/sessions", get(sessions_page))
        .route("/sessions/end-others", post(end_others))
        .route("/stats", get(stats_page))
        .route("/stats.json", get(stats_json))
        .with_state(state)
        // Every POST carries the session's CSRF token.
        .layer(CsrfLayer::new())
        .layer(sessions)
        // Outermost: pages that set a cookie or depend on one are never
        // stored for others; `/news` (public) is.
        .layer(http_cache)
}
