"""The cost figures in the docs are the stack's: the idle table counts the secrets, alarms and
schedules the synthesized template has, adds up, and the README quotes its total; nothing but the
lake bucket and the database snapshot outlives ``cdk destroy``."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRICES = {"secret": 0.40, "alarm": 0.10}


def idle_rows() -> dict[str, str]:
    text = (ROOT / "docs" / "costs.md").read_text()
    section = text.split("## Idle", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| ")]
    return {item.strip(): cost.strip() for item, cost in rows[1:]}


def test_the_idle_table_counts_what_the_stack_has(template) -> None:
    types = Counter(resource["Type"] for resource in template["Resources"].values())
    rows = idle_rows()
    secrets = types["AWS::SecretsManager::Secret"]
    alarms = types["AWS::CloudWatch::Alarm"]
    schedules = types["AWS::Events::Rule"]
    assert rows[f"{secrets} secrets (database credentials, API keys)"] == (
        f"${secrets * PRICES['secret']:.2f}"
    )
    assert rows[f"{alarms} CloudWatch alarms"] == f"${alarms * PRICES['alarm']:.2f}"
    schedule_rows = [item for item in rows if " schedule" in item]
    assert sum(int(item.split()[0]) for item in schedule_rows) == schedules


def test_the_idle_total_adds_up_and_the_readme_quotes_it() -> None:
    rows = idle_rows()
    costs = list(rows.values())[:-1]
    amounts = [float(re.findall(r"\$(\d+\.\d+)", cost)[0]) for cost in costs]
    (total,) = re.findall(r"\$(\d+\.\d+) a month", rows["**total**"])
    assert abs(sum(amounts) - float(total)) < 0.005
    assert f"about ${total} a month plus the lake's" in (ROOT / "README.md").read_text().replace(
        "\n", " "
    )


def test_only_the_bucket_and_the_database_snapshot_outlive_the_stack(template) -> None:
    kept = {
        resource["Type"]: resource["DeletionPolicy"]
        for resource in template["Resources"].values()
        if resource.get("DeletionPolicy", "Delete") != "Delete"
    }
    assert kept == {"AWS::S3::Bucket": "Retain", "AWS::RDS::DBCluster": "Snapshot"}
