"""syncorders: six Falcon services and a gateway that runs the order flow synchronously."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="syncorders",
    version="0.1.0",
    description="Order, payment and notification services behind a synchronous gateway orchestrator",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["orchestrator*", "services*", "contracts*"]),
    package_data={
        "contracts": ["openapi/*.json"],
        "orchestrator.console": ["static/*.html", "static/*.js", "static/*.css", "static/*.svg"],
    },
    install_requires=[
        "falcon>=4.0,<5",
        "waitress>=3.0.1,<4",
        # The second server (SYNCORDERS_SERVER=granian): HTTP in Rust. Its worker is
        # embedded (services/common/granian_server.py), so the version is held close.
        "granian>=2.8,<2.9",
        "requests>=2.32.4,<3",
        "urllib3>=2.5,<3",
        "attrs>=24.2",
        "cattrs>=24.1",
        "peewee>=3.17",
        "pyjwt[crypto]>=2.12.0,<3",
        "argon2-cffi>=23.1",
        "prometheus-client>=0.20",
        # Traces: the SDK, and OTLP over HTTP when an endpoint is configured.
        "opentelemetry-api>=1.30",
        "opentelemetry-sdk>=1.30",
        "opentelemetry-exporter-otlp-proto-http>=1.30",
        # Swagger UI 5 (OpenAPI 3.1) as static files for the gateway's /docs page.
        "swagger-ui-py>=23.9",
    ],
    extras_require={
        "postgres": ["psycopg2-binary>=2.9"],
        # libcurl as the internal client (SYNCORDERS_HTTP_TRANSPORT=pycurl).
        "pycurl": ["pycurl>=7.45"],
        "bench": ["matplotlib>=3.8", "pycurl>=7.45"],
        "test": [
            "pytest>=8",
            "setuptools",
            "wiremock>=2.6",
            "aiosmtpd>=1.4",
            "hypothesis>=6.100",
            "openapi-spec-validator>=0.7",
            "schemathesis>=4.32,<5",
            "jsonschema>=4.18",
            "psycopg2-binary>=2.9",
            "matplotlib>=3.8",
            "pycurl>=7.45",
            "kubernetes-validate>=1.30",
            "pyyaml>=6",
            # Drives Debian's chromium (no browser download) for the console's browser test.
            "playwright>=1.45",
        ],
    },
    entry_points={"console_scripts": ["syncorders=orchestrator.tools.cli:main"]},
)
