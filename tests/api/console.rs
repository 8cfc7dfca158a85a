//! The console in a real browser: Debian's Chromium, headless, driven
//! through chromedriver (WebDriver) by fantoccini. Each test starts the
//! server with HTTP/JSON, its own chromedriver and browser, signs in with
//! the tokens of the fund's staff and does one day's job through the pages,
//! as a person would: typing, clicking, choosing files. Every test saves a
//! screenshot of each screen it used under
//! `target/tmp/console-screenshots/` (`.ci/console-screenshots` copies them
//! to `docs/console/`, which the README links).
//!
//! Nothing waits by sleeping: a step waits for the page to show what it
//! expects, watched by a MutationObserver inside the page
//! ([`Browser::wait_text`]), up to [`STEP_TIMEOUT`].

use std::{net::SocketAddr, path::PathBuf, process::Stdio, sync::Arc, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use medassist::{
    auth::{Access, Role},
    config::Config,
    domain::Money,
    grpc::pb::{
        self, application_service_client::ApplicationServiceClient,
        roster_service_client::RosterServiceClient,
        settlement_service_client::SettlementServiceClient,
        usage_service_client::UsageServiceClient,
    },
};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::*;

/// The longest one step may take to show its result.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// The staff of a city's fund, and a hospital.
fn staff_config() -> Config {
    Config {
        access: Access::Tokens(
            vec![
                token_entry_in("t-clerk", Role::RosterAdmin, None, &["320600"]),
                token_entry_in("t-officer", Role::Officer, None, &["320600"]),
                token_entry_in("t-case-a", Role::Caseworker, None, &["320600"]),
                token_entry_in("t-case-b", Role::Caseworker, None, &["320600"]),
                token_entry_in("t-supervisor", Role::Supervisor, None, &["320600"]),
                token_entry("t-auditor", Role::Auditor, None),
            ]
            .into_iter()
            .chain(HOSPITAL_TOKENS.iter().enumerate().map(|(i, token)| {
                let hospital = format!("H{:03}", i + 1);
                token_entry(token, Role::Hospital, Some(&hospital))
            }))
            .collect(),
        ),
        ..Config::default()
    }
}

/// A server on 2026-04-02 (Beijing) with HTTP/JSON, and its HTTP address.
async fn console_server() -> (TestServer, SocketAddr) {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = TestServer::config_for(&dir);
    config.config = staff_config();
    config.http_listen = Some(local());
    config.clock = medassist::clock::ManualClock::new(at("2026-04-02T02:00:00Z"));
    let server = TestServer::launch(dir, config, None).await;
    let http = server.http_addr.expect("HTTP/JSON is served");
    (server, http)
}

/// A headless Chromium on the console, through its own chromedriver.
struct Browser {
    client: Client,
    base: String,
    test: &'static str,
    downloads: TempDir,
    /// Killed when the test ends, passing or not.
    _driver: tokio::process::Child,
}

impl Browser {
    /// Starts chromedriver on a port of its choosing and a browser session.
    async fn open(http: SocketAddr, test: &'static str) -> Browser {
        let mut driver = tokio::process::Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect(
                "chromedriver runs: install Debian's chromium, chromium-driver and fonts-noto-cjk \
                 (.ci/run does)",
            );
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(STEP_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(port) = line.split("started successfully on port ").nth(1) {
                    return port.trim_end_matches('.').parse::<u16>().unwrap();
                }
            }
            panic!("chromedriver stopped before it listened");
        })
        .await
        .expect("chromedriver listens");
        let downloads = TempDir::new().unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,1300", "--lang=zh-CN"],
                "prefs": {"download.default_directory": downloads.path()},
            },
            "timeouts": {"script": STEP_TIMEOUT.as_millis() as u64, "pageLoad": 30_000},
        });
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a browser session");
        Browser {
            client,
            base: format!("http://{http}/console/"),
            test,
            downloads,
            _driver: driver,
        }
    }

    /// Opens the console at `hash` (`#/person`), as typed in the address bar.
    async fn visit(&self, hash: &str) {
        self.client
            .goto(&format!("{}{hash}", self.base))
            .await
            .unwrap();
    }

    /// Signs in with `token` from the sign-in page; waits for the screens.
    async fn sign_in(&self, token: &str) {
        self.visit("").await;
        self.fill("#f-token", token).await;
        self.click("#signin-form button[type=submit]").await;
        self.wait_text("#who", "test").await;
    }

    /// Signs out with the header's button; waits for the sign-in page.
    async fn sign_out(&self) {
        self.click("#signout").await;
        self.wait_text("main", "访问令牌").await;
    }

    /// Types `text` into the field at `css`, replacing what it held.
    async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Sets a date or select field, which take values, not keystrokes.
    async fn set(&self, css: &str, value: &str) {
        self.find(css).await;
        self.client
            .execute(
                "const f = document.querySelector(arguments[0]); f.value = arguments[1]; \
                 f.dispatchEvent(new Event('change', {bubbles: true}));",
                vec![json!(css), json!(value)],
            )
            .await
            .unwrap();
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(STEP_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{}: no {css}: {e}", self.test))
    }

    /// Waits until the element at `css` shows `text`; returns its text.
    async fn wait_text(&self, css: &str, text: &str) -> String {
        let script = r#"
            const [css, text, done] = arguments;
            const shown = () => {
                const found = document.querySelector(css);
                return found && found.textContent.includes(text) ? found.textContent : null;
            };
            if (shown() !== null) return done(shown());
            const watch = new MutationObserver(() => {
                if (shown() !== null) { watch.disconnect(); done(shown()); }
            });
            watch.observe(document.documentElement,
                {subtree: true, childList: true, characterData: true, attributes: true});
        "#;
        match self
            .client
            .execute_async(script, vec![json!(css), json!(text)])
            .await
        {
            Ok(Value::String(shown)) => shown,
            other => {
                let page = self.text("main").await;
                panic!(
                    "{}: {css} never showed {text:?} ({other:?}); the page: {page}",
                    self.test
                )
            }
        }
    }

    /// Waits until the field at `css` holds `value` (a field's value is not
    /// in the page's markup: it is read at each frame the page draws).
    async fn wait_value(&self, css: &str, value: &str) {
        let script = r#"
            const [css, value, done] = arguments;
            const check = () => {
                const field = document.querySelector(css);
                if (field && field.value === value) done(true); else requestAnimationFrame(check);
            };
            check();
        "#;
        self.client
            .execute_async(script, vec![json!(css), json!(value)])
            .await
            .unwrap_or_else(|e| panic!("{}: {css} never held {value:?}: {e}", self.test));
    }

    /// Submits the form at `form` and waits until every part of the page
    /// it loads has answered (no "正在加载…" left in `main`); returns the
    /// milliseconds between, as the page's clock measures them.
    async fn timed(&self, form: &str) -> f64 {
        let script = r#"
            const [form, done] = arguments;
            const main = document.querySelector('main');
            let loading = false;
            const start = performance.now();
            const watch = new MutationObserver(() => {
                const now = main.textContent.includes('正在加载');
                if (loading && !now) { watch.disconnect(); done(performance.now() - start); }
                loading = loading || now;
            });
            watch.observe(main, {subtree: true, childList: true, characterData: true});
            document.querySelector(form).requestSubmit();
        "#;
        self.find(form).await;
        let took = self
            .client
            .execute_async(script, vec![json!(form)])
            .await
            .unwrap_or_else(|e| panic!("{}: {form} never answered: {e}", self.test));
        took.as_f64().unwrap()
    }

    /// The text of the element at `css` now ("" when there is none).
    async fn text(&self, css: &str) -> String {
        self.client
            .execute(
                "const f = document.querySelector(arguments[0]); return f ? f.textContent : '';",
                vec![json!(css)],
            )
            .await
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Saves what the browser shows as `<name>.png` for a reviewer.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// The file the page saved as `name`, once the browser has written it.
    async fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads.path().join(name);
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        // The browser writes a download in the background and says nothing
        // to the page: watch the directory for it.
        loop {
            if let Ok(bytes) = std::fs::read(&path) {
                return bytes;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {name} was never saved",
                self.test
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// Where the screenshots go.
fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
}

/// A person of county 320602 on the roster, put there by the clerk.
async fn enroll(server: &TestServer, birth: &str, sequence: u16, name: &str) -> String {
    let id = resident_id(birth, sequence);
    enroll_id(server, &id, name).await;
    id
}

/// Puts `id` on the roster as a dibao member since 2020, by the clerk.
async fn enroll_id(server: &TestServer, id: &str, name: &str) {
    RosterServiceClient::with_interceptor(server.channel(), bearer(Some("t-clerk")))
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(pb::Person {
                name: name.into(),
                ..dibao_person(id)
            }),
        })
        .await
        .expect("roster accepts the person");
}

/// `1234567.80` as the console writes it: `1,234,567.80`.
fn grouped(yuan: &str) -> String {
    let (whole, fraction) = yuan.split_once('.').unwrap();
    let digits: Vec<char> = whole.chars().collect();
    let mut out = String::new();
    for (i, digit) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(*digit);
    }
    format!("{out}.{fraction}")
}

/// Proves sign-in by token and screens by role: a bad token is refused with
/// what to do, each role sees its own screens and no other (a caseworker
/// never the audit screen, a hospital only its own reconciliation), the
/// English switch, and that signing out forgets the token.
#[tokio::test]
async fn staff_sign_in_and_see_the_screens_of_their_role() {
    let (server, http) = console_server().await;
    let browser = Browser::open(http, "sign_in").await;
    browser.visit("").await;
    browser.fill("#f-token", "not-a-token").await;
    browser.click("#signin-form button[type=submit]").await;
    browser.wait_text("main", "令牌无效").await;
    browser.screenshot("sign-in-refused").await;

    browser.sign_in("t-case-a").await;
    let nav = browser.wait_text("#nav", "依申请救助").await;
    assert_eq!(nav, "依申请救助政策", "a caseworker's screens");
    browser.visit("#/audit").await;
    let nav = browser.wait_text("#nav", "依申请救助").await;
    assert!(!nav.contains("审计"), "{nav}");
    assert_ne!(
        browser.text("main").await,
        "",
        "the caseworker's own first screen"
    );
    assert!(browser.text("#who").await.contains("医保经办"));
    browser.sign_out().await;
    let kept = browser
        .client
        .execute("return sessionStorage.getItem('medassist.token');", vec![])
        .await
        .unwrap();
    assert_eq!(kept, Value::Null, "signing out forgets the token");

    browser.sign_in("t-h001").await;
    assert_eq!(browser.wait_text("#nav", "对账").await, "对账");
    let hospital = browser.find("#f-hospitalId").await;
    assert_eq!(
        hospital.prop("value").await.unwrap().as_deref(),
        Some("H001")
    );
    assert!(hospital.attr("readonly").await.unwrap().is_some());
    browser.click("#lang").await;
    browser.wait_text("#nav", "Reconciliation").await;
    browser.screenshot("hospital-english").await;
    browser.click("#lang").await;
    browser.wait_text("#nav", "对账").await;

    browser.sign_out().await;
    // By keyboard alone: the token typed, then Enter.
    browser.fill("#f-token", "t-auditor\u{E007}").await;
    let nav = browser.wait_text("#nav", "审计日志").await;
    assert_eq!(nav, "救助对象对账摆渡/转介依申请救助统计政策审计日志");
    browser.close().await;
    server.stop().await;
}

/// The GBK roster of the import test: two good persons (one with two
/// enrollments), and two rows the roster refuses.
fn gbk_roster(zhang: &str, li: &str) -> Vec<u8> {
    let bad_region = resident_id("1980-02-02", 31);
    let bad_date = resident_id("1981-03-03", 32);
    let text = format!(
        "patient_id,name,region_code,psychiatric_disability_grade,paralysis_certified,\
         enrollment_kind,valid_from,valid_to,exit\r\n\
         {zhang},张三丰,320602,0,false,DIBAO,2021-01-01,,\r\n\
         {zhang},张三丰,320602,0,false,REGISTERED_POOR,2016-01-01,2020-12-31,LEFT_POVERTY\r\n\
         {li},李四娘,320602,2,true,TEKUN,2019-06-01,,\r\n\
         {bad_region},王五,3206,0,false,DIBAO,2020-01-01,,\r\n\
         {bad_date},赵六,320602,0,false,DIBAO,2020-13-01,,\r\n"
    );
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    bytes.into_owned()
}

/// Proves a clerk imports a GBK roster with progress, reads the rejected
/// rows by line and column and downloads them to fix; then that the person
/// screen shows what each role may see: the clerk the record and its
/// enrollments, an auditor also the cap bar and the settlements with their
/// explanations, with resident IDs masked.
#[tokio::test]
async fn a_clerk_imports_a_gbk_roster_and_the_person_is_looked_up() {
    let (server, http) = console_server().await;
    let (zhang, li) = (resident_id("1960-01-01", 11), resident_id("1958-07-08", 12));
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("roster-gbk.csv");
    std::fs::write(&file, gbk_roster(&zhang, &li)).unwrap();

    let browser = Browser::open(http, "import").await;
    browser.sign_in("t-clerk").await;
    browser.visit("#/import").await;
    browser
        .find("#f-file")
        .await
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    browser.click("#import-form button[type=submit]").await;
    let status = browser.wait_text("#import-status", "导入完成").await;
    assert_eq!(status, "导入完成：2 人成功，2 行被拒。");
    let rejected = browser.wait_text("#import-result", "region_code").await;
    assert!(rejected.contains("5region_code"), "{rejected}");
    assert!(rejected.contains("6valid_from"), "{rejected}");
    browser.screenshot("import").await;
    browser.click("#download-rejected").await;
    let saved = browser.downloaded("rejected-roster-gbk.csv").await;
    let saved = String::from_utf8(saved).unwrap();
    let lines: Vec<&str> = saved.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "the header and the two rejected rows: {saved}"
    );
    assert!(
        lines[1].contains(",王五,3206,") && lines[2].contains(",赵六,"),
        "{saved}"
    );

    let roster = RosterServiceClient::with_interceptor(server.channel(), bearer(Some("t-clerk")))
        .get_person(pb::GetPersonRequest {
            patient_id: zhang.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(roster.name, "张三丰", "GBK names arrive whole");
    assert_eq!(roster.enrollments.len(), 2);

    browser.visit("#/person").await;
    browser.fill("#f-patientId", &zhang).await;
    browser.fill("#f-year", "2026").await;
    browser.click("#person-search button[type=submit]").await;
    let record = browser.wait_text("#person-record", "张三丰").await;
    assert!(record.contains(&zhang), "a clerk sees IDs whole: {record}");
    browser.wait_text("#person-record", "低保对象").await;
    browser.wait_text("#person-usage", "不能查看").await;
    browser.screenshot("person-clerk").await;
    browser.sign_out().await;

    let mut hospital =
        SettlementServiceClient::with_interceptor(server.channel(), bearer(Some("t-h001")));
    let (paid, _) = settled(hospital.settle(worked_example(&zhang, "P-1")).await);
    browser.sign_in("t-auditor").await;
    browser
        .visit(&format!("#/person?id={zhang}&year=2026"))
        .await;
    browser.wait_text("#person-record", "张三丰").await;
    let usage = browser.wait_text("#person-usage", "已用").await;
    assert!(usage.contains(&grouped(&paid.assistance_amount)), "{usage}");
    let list = browser.wait_text("#person-settlements", "P-1").await;
    assert!(
        list.contains("320602********") && !list.contains(&zhang),
        "masked: {list}"
    );
    assert!(list.contains(&grouped(&paid.assistance_amount)), "{list}");
    browser.click("#person-settlements details summary").await;
    browser
        .wait_text("#person-settlements .explain", "医疗救助")
        .await;
    browser.screenshot("person").await;
    browser.close().await;
    server.stop().await;
}

/// Proves the caseworkers' four eyes in the console: the caseworker who
/// submitted an application sees her approval refused and why, a second
/// approves it with a payment reference, and the same approval sent again
/// (a retry after a lost answer) does not approve twice.
#[tokio::test]
async fn a_second_caseworker_approves_what_the_first_submitted() {
    let (server, http) = console_server().await;
    let patient = enroll(&server, "1962-03-04", 21, "钱七").await;
    for (claim, case) in [("A-1", "案卷 2026-017，扫描票据"), ("A-2", "案卷 2026-018")] {
        ApplicationServiceClient::with_interceptor(server.channel(), bearer(Some("t-case-a")))
            .submit_application(pb::SubmitApplicationRequest {
                claim: Some(pb::SettleRequest {
                    hospital_id: "H009".into(),
                    ..claim_paying_7000(&patient, claim)
                }),
                documents: case.into(),
            })
            .await
            .unwrap();
    }

    let browser = Browser::open(http, "applications").await;
    let open_queue = || async {
        browser.visit("#/applications").await;
        browser.fill("#queue-form #f-regionCode", "320600").await;
        browser.set("#f-state", "APPLICATION_STATE_PENDING").await;
        browser.set("#queue-form #f-fromDate", "2026-04-01").await;
        browser.set("#queue-form #f-toDate", "2026-04-30").await;
        browser.click("#queue-form button[type=submit]").await;
        browser.wait_text("#queue", "A-1").await;
        browser.click("#queue tbody button").await;
        browser.wait_text("#application", "医疗救助").await;
    };
    browser.sign_in("t-case-a").await;
    open_queue().await;
    browser.fill("#f-paymentRef", "PAY-2026-017").await;
    browser.click("#approve").await;
    let refused = browser.wait_text("#decision", "four eyes").await;
    assert!(
        refused.contains("另一位经办人"),
        "says what to do: {refused}"
    );
    browser.screenshot("application-refused").await;
    browser.sign_out().await;

    browser.sign_in("t-case-b").await;
    open_queue().await;
    browser.screenshot("application").await;
    browser.fill("#f-paymentRef", "PAY-2026-017").await;
    browser.click("#approve").await;
    let approved = browser.wait_text("#decision", "已批准").await;
    assert_eq!(approved, "已批准，支付凭证 PAY-2026-017。");
    let now = browser.wait_text("#application h2", "已批准").await;
    assert!(now.contains("H009 / A-1"), "shown as it now stands: {now}");
    assert_eq!(
        browser.text("#approve-form").await,
        "",
        "nothing left to decide"
    );
    let left = browser.wait_text("#queue", "A-2").await;
    assert!(
        !left.contains("A-1"),
        "the approved one leaves the pending queue: {left}"
    );
    browser.screenshot("application-approved").await;
    browser.click("#queue tbody button").await;
    browser.wait_text("#application h2", "A-2").await;
    browser
        .fill("#reject-form #f-reason", "非本市常住人口")
        .await;
    browser.click("#reject").await;
    browser.wait_text("#decision", "已驳回").await;
    browser.wait_text("#application h2", "已驳回").await;
    browser.wait_text("#queue", "该条件下无申请").await;

    // The same approval again, as the page would send it after a lost answer.
    let again = browser
        .client
        .execute_async(
            "const done = arguments[0];
             fetch('/v1/applications:approve', {method: 'POST',
                 headers: {'Content-Type': 'application/json',
                           'Authorization': 'Bearer ' + sessionStorage.getItem('medassist.token')},
                 body: JSON.stringify({hospitalId: 'H009', claimId: 'A-1', paymentRef: 'PAY-2026-017'})})
             .then(r => r.json()).then(done);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(again["application"]["state"], "APPLICATION_STATE_APPROVED");
    assert_eq!(again["application"]["approvedBy"], "test t-case-b");
    let usage = UsageServiceClient::with_interceptor(server.channel(), bearer(Some("t-auditor")))
        .get_annual_usage(pb::GetAnnualUsageRequest {
            patient_id: patient.clone(),
            year: 2026,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        fen(&usage.used),
        fen("7000.00"),
        "approved once, the rejected one given back"
    );

    // A stay settled before its patient was enrolled: found, and opened as an application.
    let late = resident_id("1955-05-05", 23);
    let mut hospital =
        SettlementServiceClient::with_interceptor(server.channel(), bearer(Some("t-h001")));
    let (unpaid, _) = settled(hospital.settle(worked_example(&late, "W-9")).await);
    assert_eq!(
        unpaid.assistance_amount, "0.00",
        "not enrolled when settled"
    );
    enroll_id(&server, &late, "孙十").await;
    browser.visit("#/applications").await;
    browser
        .fill("#candidates-form #f-regionCode", "320600")
        .await;
    browser.fill("#candidates-form #f-year", "2026").await;
    browser.click("#candidates-form button[type=submit]").await;
    let found = browser.wait_text("#candidates", "7,350.00").await;
    assert!(found.contains(&unpaid.settlement_id), "{found}");
    browser
        .fill(
            &format!("#f-documents-{}", unpaid.settlement_id),
            "案卷 2026-031",
        )
        .await;
    browser.click("#candidates tbody button").await;
    browser.wait_text("#candidates", "已发起申请").await;
    browser.screenshot("candidates").await;
    browser.close().await;
    server.stop().await;
}

/// Proves an officer closes a hospital's day (matched with the right
/// figures, not with wrong ones, the day's settlements listed), reads the
/// referrals and the year's statistics; a supervisor reads the policy; an
/// auditor finds who touched a patient.
#[tokio::test]
async fn an_officer_closes_a_day_and_the_year_is_read() {
    let (server, http) = console_server().await;
    let a = enroll(&server, "1960-01-01", 41, "孙八").await;
    let b = enroll(&server, "1970-02-02", 42, "周九").await;
    let mut hospital =
        SettlementServiceClient::with_interceptor(server.channel(), bearer(Some("t-h001")));
    let (first, _) = settled(hospital.settle(worked_example(&a, "D-1")).await);
    let (second, _) = settled(
        hospital
            .settle(pb::SettleRequest {
                total_cost: "300000.00".into(),
                in_scope_cost: "300000.00".into(),
                ..claim_paying_7000(&b, "D-2")
            })
            .await,
    );
    assert!(second.referred, "past the cap: referred");
    let total = Money::from_fen(fen(&first.assistance_amount) + fen(&second.assistance_amount))
        .unwrap()
        .to_string();

    let browser = Browser::open(http, "officer").await;
    browser.sign_in("t-officer").await;
    browser.visit("#/reconcile").await;
    browser.fill("#f-hospitalId", "H001").await;
    browser.set("#f-fromDate", "2026-04-02").await;
    browser.fill("#f-settledCount", "2").await;
    browser.fill("#f-assistanceTotal", &total).await;
    browser.click("#reconcile-form button[type=submit]").await;
    browser.wait_text("#reconcile-result", "一致：").await;
    browser.wait_text("#reconcile-settlements", "D-2").await;
    browser.screenshot("reconcile").await;
    browser.fill("#f-assistanceTotal", "1.00").await;
    browser.click("#reconcile-form button[type=submit]").await;
    let differ = browser.wait_text("#reconcile-result", "不一致").await;
    assert!(differ.contains("救助金额合计"), "{differ}");
    // The hospital's figures uploaded as its file instead of typed, then the day exported.
    let files = TempDir::new().unwrap();
    let figures = files.path().join("H001-2026-04-02.csv");
    std::fs::write(
        &figures,
        format!(
            "settled_count,assistance_total,reversed_count,reversed_total\r\n2,{total},0,0.00\r\n"
        ),
    )
    .unwrap();
    browser
        .find("#f-figuresFile")
        .await
        .send_keys(figures.to_str().unwrap())
        .await
        .unwrap();
    browser.wait_value("#f-assistanceTotal", &total).await;
    browser.click("#reconcile-form button[type=submit]").await;
    browser.wait_text("#reconcile-result", "一致：").await;
    browser.wait_text("#reconcile-settlements", "D-2").await;
    browser.click("#export").await;
    let exported = browser
        .downloaded("settlements-H001-2026-04-02-2026-04-02.csv")
        .await;
    let exported = String::from_utf8(exported).unwrap();
    let rows: Vec<&str> = exported.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        rows.len(),
        3,
        "the header and the day's two settlements: {exported}"
    );
    assert!(
        rows[1].contains(",H001,D-1,2026-04-02,") && rows[2].contains(",H001,D-2,"),
        "{exported}"
    );

    browser.visit("#/referrals").await;
    browser.set("#f-fromDate", "2026-04-01").await;
    browser.set("#f-toDate", "2026-04-30").await;
    browser.click("#referrals-form button[type=submit]").await;
    let referrals = browser.wait_text("#referrals-list", "已达年度限额").await;
    assert!(
        referrals.contains("H001 / D-2150,000.000.00已达年度限额"),
        "past the cap: {referrals}"
    );
    assert!(
        referrals.contains("H001 / D-111,150.00142,650.00自付费用过高"),
        "what the patient pays: {referrals}"
    );
    browser.screenshot("referrals").await;

    browser.visit("#/statistics").await;
    browser.fill("#f-year", "2026").await;
    browser.click("#statistics-form button[type=submit]").await;
    let figures = browser.wait_text("#statistics", "2026年4月").await;
    assert!(figures.contains(&grouped(&total)), "{figures}");
    assert!(figures.contains("泌尿生殖系统疾病") && figures.contains("低保"));
    browser.screenshot("statistics").await;
    browser.sign_out().await;

    browser.sign_in("t-supervisor").await;
    browser.visit("#/policy").await;
    browser.fill("#policy-form #f-year", "2026").await;
    browser.click("#policy-form button[type=submit]").await;
    browser.wait_text("#policy", "320600").await;
    browser.screenshot("policy").await;
    // What the year would have cost under a proposal: the city at 80% instead of 70%.
    let proposal =
        CITY_POLICY.replace("assistance_ratio = \"0.70\"", "assistance_ratio = \"0.80\"");
    browser.fill("#f-policyToml", &proposal).await;
    browser.fill("#simulate-form #f-year", "2026").await;
    browser.click("#simulate-form button[type=submit]").await;
    let cost = browser.wait_text("#simulation", "实付").await;
    assert!(cost.contains(&grouped(&total)), "what was paid: {cost}");
    browser.sign_out().await;

    browser.sign_in("t-auditor").await;
    browser.visit("#/audit").await;
    browser.fill("#audit-form #f-patientId", &a).await;
    browser.set("#audit-form #f-from", "2026-04-01T00:00").await;
    browser.set("#audit-form #f-to", "2026-04-03T00:00").await;
    browser.click("#audit-form button[type=submit]").await;
    let trail = browser
        .wait_text("#audit", "SettlementService/Settle")
        .await;
    assert!(
        trail.contains("test t-h001") && trail.contains("test t-clerk"),
        "{trail}"
    );
    browser.screenshot("audit").await;
    browser.close().await;
    server.stop().await;
}

/// Diagnosis codes the benchmark's stays are drawn from, one per chapter
/// the fund sees most.
const BENCH_CODES: [&str; 7] = [
    "N18.5", "C34.1", "I63.9", "E11.9", "J44.1", "F20.0", "K74.6",
];

/// Measures how long each console page takes to show its answer, in the
/// browser, with a year of a city's data: `MEDASSIST_CONSOLE_SETTLEMENTS`
/// settlements (100,000 by default) of 20,000 persons at 20 hospitals,
/// spread over the business days of 2026, and one application a day.
/// Each page is timed from the click of its button to its answer on the
/// screen, `MEDASSIST_CONSOLE_RUNS` times (5); the medians are printed with
/// their ratio to the policy page, which reads one small record, measured
/// in the same run. `benches/console.sh` runs it in release.
#[tokio::test]
#[ignore = "a benchmark: benches/console.sh runs it in release"]
async fn pages_with_a_year_of_a_city() {
    let total: usize = env_or("MEDASSIST_CONSOLE_SETTLEMENTS", 100_000);
    let runs: usize = env_or("MEDASSIST_CONSOLE_RUNS", 5);
    let persons = 20_000.min(total.max(1));
    let dir = Arc::new(TempDir::new().unwrap());
    let clock = medassist::clock::ManualClock::new(at("2026-01-01T02:00:00Z"));
    let mut config = TestServer::config_for(&dir);
    config.config = staff_config();
    config.http_listen = Some(local());
    config.clock = clock.clone();
    let server = TestServer::launch(dir, config, None).await;
    let http = server.http_addr.unwrap();

    let made = std::time::Instant::now();
    let ids: Vec<String> = (0..persons)
        .map(|i| {
            resident_id(
                &format!("19{:02}-01-01", 30 + i / 999),
                (i % 999 + 1) as u16,
            )
        })
        .collect();
    let records: Vec<pb::UpsertPersonRequest> = ids
        .iter()
        .map(|id| pb::UpsertPersonRequest {
            person: Some(dibao_person(id)),
        })
        .collect();
    RosterServiceClient::with_interceptor(server.channel(), bearer(Some("t-clerk")))
        .import_persons(tokio_stream::iter(records))
        .await
        .unwrap();
    let per_day = total.div_ceil(365);
    let mut made_count = 0;
    for day in 0..365i64 {
        let noon = at("2026-01-01T02:00:00Z").unix_micros() + day * 86_400_000_000;
        clock.set(medassist::domain::Timestamp::from_unix_micros(noon));
        let date =
            medassist::domain::BusinessDay::from_days_since_epoch((noon / 86_400_000_000) as i32)
                .to_string();
        let mut calls = tokio::task::JoinSet::new();
        for j in 0..per_day.min(total - made_count) {
            let k = made_count + j;
            let cost = 2_000 + (k * 7_919) % 60_000;
            let request = pb::SettleRequest {
                hospital_id: format!("H{:03}", 1 + k % 20),
                claim_id: format!("Y-{k}"),
                patient_id: ids[k % persons].clone(),
                admission_date: date.clone(),
                discharge_date: date.clone(),
                diagnosis_codes: vec![BENCH_CODES[k % BENCH_CODES.len()].into()],
                total_cost: format!("{cost}.00"),
                in_scope_cost: format!("{}.00", cost * 4 / 5),
                basic_insurance_paid: "0".into(),
                critical_illness_paid: "0".into(),
                claim_kind: 0,
            };
            let mut client = SettlementServiceClient::with_interceptor(
                server.channel(),
                bearer(Some(HOSPITAL_TOKENS[k % 20])),
            );
            calls.spawn(async move { client.settle(request).await.unwrap() });
            if calls.len() == 64 {
                calls.join_next().await.unwrap().unwrap();
            }
        }
        calls.join_all().await;
        made_count = (made_count + per_day).min(total);
        ApplicationServiceClient::with_interceptor(server.channel(), bearer(Some("t-case-a")))
            .submit_application(pb::SubmitApplicationRequest {
                claim: Some(pb::SettleRequest {
                    hospital_id: "H099".into(),
                    claim_id: format!("A-{day}"),
                    admission_date: date.clone(),
                    discharge_date: date.clone(),
                    ..claim_paying_7000(&ids[day as usize % persons], "")
                }),
                documents: format!("案卷 {day}"),
            })
            .await
            .unwrap();
    }
    println!(
        "made {persons} persons, {made_count} settlements and 365 applications in {:.1?}",
        made.elapsed()
    );

    let browser = Browser::open(http, "bench").await;
    browser.sign_in("t-auditor").await;
    let patient = ids[0].clone();
    let pages: Vec<(&str, Vec<f64>)> = vec![
        ("policy (baseline)", Vec::new()),
        ("person", Vec::new()),
        ("reconciliation (H001, one day)", Vec::new()),
        ("referrals (a month)", Vec::new()),
        ("applications (a month)", Vec::new()),
        ("statistics (the year)", Vec::new()),
        ("audit (a patient, a year)", Vec::new()),
    ];
    let mut pages = pages;
    for _ in 0..runs {
        for (name, times) in pages.iter_mut() {
            let ms = match *name {
                "policy (baseline)" => {
                    browser.visit("#/policy").await;
                    browser.fill("#policy-form #f-regionCode", "320600").await;
                    browser.fill("#policy-form #f-year", "2026").await;
                    browser.timed("#policy-form").await
                }
                "person" => {
                    browser.visit("#/person").await;
                    browser.fill("#f-patientId", &patient).await;
                    browser.fill("#f-year", "2026").await;
                    browser.timed("#person-search").await
                }
                "reconciliation (H001, one day)" => {
                    browser.visit("#/reconcile").await;
                    browser.fill("#f-hospitalId", "H001").await;
                    browser.set("#f-fromDate", "2026-06-15").await;
                    browser.timed("#reconcile-form").await
                }
                "referrals (a month)" => {
                    browser.visit("#/referrals").await;
                    browser.fill("#f-regionCode", "320600").await;
                    browser.set("#f-fromDate", "2026-06-01").await;
                    browser.set("#f-toDate", "2026-06-30").await;
                    browser.timed("#referrals-form").await
                }
                "applications (a month)" => {
                    browser.visit("#/applications").await;
                    browser.fill("#queue-form #f-regionCode", "320600").await;
                    browser
                        .set("#f-state", "APPLICATION_STATE_UNSPECIFIED")
                        .await;
                    browser.set("#queue-form #f-fromDate", "2026-06-01").await;
                    browser.set("#queue-form #f-toDate", "2026-06-30").await;
                    browser.timed("#queue-form").await
                }
                "statistics (the year)" => {
                    browser.visit("#/statistics").await;
                    browser.fill("#f-regionCode", "320600").await;
                    browser.fill("#f-year", "2026").await;
                    browser.timed("#statistics-form").await
                }
                _ => {
                    browser.visit("#/audit").await;
                    browser.fill("#audit-form #f-patientId", &patient).await;
                    browser.set("#audit-form #f-from", "2026-01-01T00:00").await;
                    browser.set("#audit-form #f-to", "2027-01-01T00:00").await;
                    browser.timed("#audit-form").await
                }
            };
            let failed = browser.text("main [role=alert]").await;
            assert!(failed.is_empty(), "{name}: {failed}");
            times.push(ms);
        }
    }
    let median = |times: &[f64]| {
        let mut sorted = times.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let baseline = median(&pages[0].1);
    println!("page | median ms | / baseline | runs (ms)");
    for (name, times) in &pages {
        let m = median(times);
        println!(
            "{name} | {m:.0} | {:.1} | {}",
            m / baseline,
            times
                .iter()
                .map(|t| format!("{t:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    browser.close().await;
    server.stop().await;
}

/// The benchmark's twenty hospitals' tokens.
const HOSPITAL_TOKENS: [&str; 20] = [
    "t-h001", "t-h002", "t-h003", "t-h004", "t-h005", "t-h006", "t-h007", "t-h008", "t-h009",
    "t-h010", "t-h011", "t-h012", "t-h013", "t-h014", "t-h015", "t-h016", "t-h017", "t-h018",
    "t-h019", "t-h020",
];
