//! scripts/plot.py, which draws the tables of scripts/compare.sh and
//! scripts/dns-compare.sh as SVG charts: run with python3 on small tables,
//! its output parsed as XML and read back (series, points, bars). Each test
//! is skipped, saying so, when python3 is not installed.

use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, Output};

/// Runs plot.py with `args`, the table `table` in a temporary file given
/// as the first argument after the chart kind, and the SVG written to
/// standard output; `None` when python3 is absent.
fn plot(kind: &str, table: &str, args: &[&str]) -> Option<Output> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("table.tsv");
    std::fs::write(&path, table).expect("the table is written");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/plot.py");
    match Command::new("python3")
        .arg(script)
        .arg(kind)
        .arg(&path)
        .args(args)
        .args(["--out", "-"])
        .output()
    {
        Ok(output) => Some(output),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!("skipped: no python3");
            None
        }
        Err(e) => panic!("python3 did not run: {e}"),
    }
}

/// The SVG plot.py printed, after checking it succeeded.
fn svg(output: &Output) -> String {
    assert!(
        output.status.success(),
        "plot.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 SVG")
}

/// The elements with class `class`, in document order.
fn with_class<'a>(doc: &'a roxmltree::Document, class: &str) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.attribute("class") == Some(class))
        .collect()
}

/// Each series' name and its points' (data-x, data-y).
fn series(doc: &roxmltree::Document) -> Vec<(String, Vec<(f64, f64)>)> {
    with_class(doc, "series")
        .into_iter()
        .map(|g| {
            let points = g
                .children()
                .filter(|n| n.attribute("class") == Some("point"))
                .map(|p| {
                    let x = p.attribute("data-x").expect("data-x").parse().unwrap();
                    let y = p.attribute("data-y").expect("data-y").parse().unwrap();
                    (x, y)
                })
                .collect();
            (
                g.attribute("data-name").expect("data-name").to_string(),
                points,
            )
        })
        .collect()
}

/// The pixel positions of a series' polyline.
fn polyline(doc: &roxmltree::Document, name: &str) -> Vec<(f64, f64)> {
    let g = with_class(doc, "series")
        .into_iter()
        .find(|g| g.attribute("data-name") == Some(name))
        .expect("the series");
    let line = g
        .children()
        .find(|n| n.has_tag_name("polyline"))
        .expect("a polyline");
    line.attribute("points")
        .unwrap()
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

/// Whether the document is an SVG root with the SVG namespace and a size.
fn assert_svg_root(doc: &roxmltree::Document) {
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    for attr in ["width", "height"] {
        let v: f64 = root.attribute(attr).unwrap().parse().unwrap();
        assert!(v >= 400.0, "{attr} {v}");
    }
}

const CLIENTS: &str = "clients\ttarget\tqps\tp50\tp99\n\
    1\tdnslb ls\t9939\t0.094\t0.184\n\
    1\tselect_ls.py\t8756\t0.101\t0.238\n\
    8\tdnslb ls\t27417\t0.252\t0.947\n\
    8\tselect_ls.py\tn/a\tn/a\tn/a\n\
    64\tdnslb ls\t31351\t1.722\t4.655\n\
    64\tselect_ls.py\t8849\t6.198\t21.030\n";

/// The SVG of CLIENTS' qps by client count, one line per target, log x;
/// `None` when python3 is absent.
fn qps_by_clients() -> Option<String> {
    let args = [
        "--x", "clients", "--y", "qps", "--series", "target", "--log-x",
    ];
    plot("line", CLIENTS, &args).map(|output| svg(&output))
}

#[test]
fn smoke() {
    let Some(text) = qps_by_clients() else {
        return;
    };
    let doc = roxmltree::Document::parse(&text).expect("valid XML");
    assert_svg_root(&doc);
    let got = series(&doc);
    assert_eq!(
        got,
        vec![
            (
                "dnslb ls".to_string(),
                vec![(1.0, 9939.0), (8.0, 27417.0), (64.0, 31351.0)]
            ),
            // The n/a row leaves its point out.
            (
                "select_ls.py".to_string(),
                vec![(1.0, 8756.0), (64.0, 8849.0)]
            ),
        ]
    );
    // Each series is in the legend.
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert!(texts.contains(&"dnslb ls") && texts.contains(&"select_ls.py"));
}

#[test]
fn lines_run_left_to_right_and_higher_values_are_drawn_higher() {
    let Some(text) = qps_by_clients() else {
        return;
    };
    let doc = roxmltree::Document::parse(&text).unwrap();
    let pixels = polyline(&doc, "dnslb ls");
    assert_eq!(pixels.len(), 3);
    // x grows to the right; qps grows, so SVG y (downwards) shrinks.
    assert!(pixels.windows(2).all(|w| w[0].0 < w[1].0), "{pixels:?}");
    assert!(pixels.windows(2).all(|w| w[0].1 > w[1].1), "{pixels:?}");
    // Log x: 1 -> 8 is three doublings, 8 -> 64 three more: equal steps.
    let (a, b) = (pixels[1].0 - pixels[0].0, pixels[2].0 - pixels[1].0);
    assert!((a - b).abs() < 1.0, "steps {a} and {b}");
}

#[test]
fn several_y_columns_give_a_line_each_per_series() {
    let Some(output) = plot(
        "line",
        CLIENTS,
        &[
            "--x", "clients", "--y", "p50", "--y", "p99", "--series", "target", "--log-x",
            "--log-y",
        ],
    ) else {
        return;
    };
    let text = svg(&output);
    let doc = roxmltree::Document::parse(&text).unwrap();
    let got: Vec<(String, usize)> = series(&doc)
        .into_iter()
        .map(|(name, points)| (name, points.len()))
        .collect();
    let want = [
        ("dnslb ls p50", 3),
        ("dnslb ls p99", 3),
        ("select_ls.py p50", 2),
        ("select_ls.py p99", 2),
    ];
    assert_eq!(
        got,
        want.map(|(n, c)| (n.to_string(), c)).to_vec(),
        "series and point counts"
    );
    // p99 above p50 at every x: drawn higher (smaller SVG y).
    let (p50, p99) = (
        polyline(&doc, "dnslb ls p50"),
        polyline(&doc, "dnslb ls p99"),
    );
    assert!(p50.iter().zip(&p99).all(|(a, b)| b.1 < a.1));
}

#[test]
fn bars_one_per_row_in_order_with_their_values() {
    let table = "target\tserver\tqps\n\
        ts direct\tdnslb ts\t144580\n\
        dnslb ls --pool roundrobin\tdnslb ls\t68745\n\
        dnsdist roundrobin\tdnsdist\t102395\n\
        a row that did not run\tdnslb ls\tn/a\n";
    let Some(output) = plot(
        "bar",
        table,
        &["--label", "target", "--value", "qps", "--group", "server"],
    ) else {
        return;
    };
    let text = svg(&output);
    let doc = roxmltree::Document::parse(&text).expect("valid XML");
    assert_svg_root(&doc);
    let bars = with_class(&doc, "bar");
    let got: Vec<(&str, f64, f64)> = bars
        .iter()
        .map(|b| {
            (
                b.attribute("data-name").unwrap(),
                b.attribute("data-value").unwrap().parse().unwrap(),
                b.attribute("width").unwrap().parse().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = got.iter().map(|b| b.0).collect();
    assert_eq!(
        names,
        [
            "ts direct",
            "dnslb ls --pool roundrobin",
            "dnsdist roundrobin"
        ]
    );
    assert_eq!(
        got.iter().map(|b| b.1).collect::<Vec<_>>(),
        [144580.0, 68745.0, 102395.0]
    );
    // Lengths in proportion to the values (bars start at 0).
    let scale = got[0].2 / got[0].1;
    for (name, value, width) in &got {
        assert!(
            (width - value * scale).abs() < 1.0,
            "{name}: {width} px for {value}"
        );
    }
    // The row with no figure is named, with n/a and no bar; the groups are in the legend.
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    for want in [
        "a row that did not run",
        "n/a",
        "dnsdist",
        "dnslb ts",
        "dnslb ls",
        "144,580",
    ] {
        assert!(texts.contains(&want), "no text {want:?} in {texts:?}");
    }
}

#[test]
fn names_with_markup_characters_stay_text() {
    let table = "x\tname\ty\n1\t<a & \"b\">\t2\n2\t<a & \"b\">\t3\n";
    let Some(output) = plot("line", table, &["--x", "x", "--y", "y", "--series", "name"]) else {
        return;
    };
    let text = svg(&output);
    let doc = roxmltree::Document::parse(&text).expect("valid XML");
    assert_eq!(series(&doc)[0].0, "<a & \"b\">");
}

#[test]
fn a_table_it_cannot_draw_is_an_error_naming_what_is_wrong() {
    let cases: [(&str, &str, &[&str], &str); 4] = [
        (
            "line",
            CLIENTS,
            &["--x", "clients", "--y", "qps", "--series", "server"],
            "no column 'server'",
        ),
        (
            "line",
            "x\ty\n1\t2\t3\n",
            &["--x", "x", "--y", "y", "--series", "x"],
            "table.tsv:2: 3 columns, the header has 2",
        ),
        (
            "line",
            "x\ty\ts\n1\tn/a\ta\n",
            &["--x", "x", "--y", "y", "--series", "s"],
            "no row has numbers",
        ),
        ("bar", "", &["--label", "x", "--value", "y"], "empty"),
    ];
    for (kind, table, args, want) in cases {
        let Some(output) = plot(kind, table, args) else {
            return;
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{want}: {stderr}");
        assert!(stderr.contains(want), "{want:?} not in {stderr:?}");
        assert!(output.stdout.is_empty(), "no SVG for {want}");
    }
}
