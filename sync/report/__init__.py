"""The chain-of-custody report: report.json, report.html, its timeline and report.pdf."""
