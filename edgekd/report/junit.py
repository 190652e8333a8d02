"""junit.xml: one test case per budget gate plus the artifact checks, for CI systems."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from edgekd.report.text import xml_text


def render_junit(r: dict) -> str:
    cases = []
    for g in r["verdict"]["gates"]:
        msg = (
            f"{g['name']}: {g['value']:.4g} {g['unit']} vs limit {g['limit']} {g['unit']} "
            f"({g['detail']})"
        )
        cases.append((f"budget.{g['name']}", g["passed"], msg))
    art = r["artifact"]
    cases.append(
        ("artifact.produced", True, f"{art['path']} ({art['precision']}, sha256 {art['sha256']})")
    )
    for name, par in r["parity"].items():
        # informational: the budgets alone decide the exit code, and junit agrees with it
        cases.append(
            (
                f"parity.{name}",
                True,
                f"ONNX Runtime vs torch top-1 agreement {par['top1_agreement']:.2f}%, "
                f"max |logit diff| {par['max_abs_diff']:.3g}",
            )
        )
    suite = ET.Element(
        "testsuite",
        name="edgekd",
        tests=str(len(cases)),
        failures=str(sum(not ok for _, ok, _ in cases)),
        errors="0",
        skipped="0",
        time=f"{r.get('wall_s', 0):.3f}",
    )
    for name, ok, msg in cases:
        case = ET.SubElement(
            suite, "testcase", classname=f"edgekd.{r['target']}", name=name, time="0"
        )
        if ok:
            ET.SubElement(case, "system-out").text = msg
        else:
            ET.SubElement(case, "failure", message=msg, type="BudgetMissed").text = msg
    root = ET.Element(
        "testsuites",
        name="edgekd",
        tests=suite.get("tests"),
        failures=suite.get("failures"),
        errors="0",
    )
    root.append(suite)
    for el in root.iter():  # class names and paths may hold what XML 1.0 cannot
        el.text = xml_text(el.text) if el.text else el.text
        el.attrib = {k: xml_text(v) for k, v in el.attrib.items()}
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
