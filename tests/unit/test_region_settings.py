"""A deployment in several regions: each region's database, the directory, and the settings
a process of one region sees (herald.config: regions, directory_url, in_region)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from herald.config import Settings
from herald.errors import ConfigError

US = "postgresql://herald@us-db:5432/herald"
EU = "postgresql://herald@eu-db:5432/herald"
DIRECTORY = "postgresql://herald@directory:5432/herald"
REGIONS = {
    "us-east-1": {"database_url": US, "api_url": "https://us.example.com"},
    "eu-west-1": {"database_url": EU, "replica_url": EU.replace("eu-db", "eu-replica")},
}


def settings(**more):
    base = {"regions": REGIONS, "region": "us-east-1", "directory_url": DIRECTORY}
    return Settings(**(base | more))


def test_the_environment_names_the_regions(monkeypatch):
    monkeypatch.setenv("HERALD_REGIONS", json.dumps(REGIONS))
    monkeypatch.setenv("HERALD_REGION", "eu-west-1")
    monkeypatch.setenv("HERALD_DIRECTORY_URL", DIRECTORY)
    found = Settings()
    # A process's database is its region's, and so is its replica.
    assert (found.database_url, found.database.replica_url) == (
        EU,
        EU.replace("eu-db", "eu-replica"),
    )
    assert str(found.regions["us-east-1"].api_url) == "https://us.example.com/"


def test_in_region_is_that_region_s_database():
    eu = settings().in_region("eu-west-1")
    assert (eu.region, eu.database_url) == ("eu-west-1", EU)
    back = eu.in_region("us-east-1")
    assert (back.database_url, back.database.replica_url) == (US, None)


def test_an_unknown_region_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown region 'ap-south-1'.*eu-west-1, us-east-1"):
        settings().in_region("ap-south-1")
    with pytest.raises(ValidationError, match="not one of regions"):
        settings(region="ap-south-1")


def test_one_region_knows_only_itself():
    single = Settings(database_url=US, region="us-east-1")
    assert single.in_region("us-east-1") is single
    with pytest.raises(ConfigError, match="one region, us-east-1"):
        single.in_region("eu-west-1")


@pytest.mark.parametrize(
    ("more", "said"),
    [
        ({"directory_url": None}, "needs directory_url"),
        ({"directory_url": "sqlite:///d.db"}, "directory_url must start with postgresql://"),
        ({"database_url": "postgresql://elsewhere/db"}, "differs from region us-east-1"),
        ({"regions": {"us-east-1": {"database_url": "sqlite:///x.db"}}}, "postgresql://"),
        ({"regions": {"US_EAST": {"database_url": US}}}, "region name 'US_EAST'"),
        ({"api": {"other_regions": "redirect"}}, "needs every region's api_url: eu-west-1"),
        (
            {
                "regions": {
                    "us-east-1": {"database_url": US, "replica_url": "postgresql://a:1,b:2/h"}
                }
            },
            "must name one server",
        ),
        ({"regions": {"us-east-1": {"database_url": US, "colour": "red"}}}, "colour"),
    ],
)
def test_a_mistake_is_refused_by_name(more, said):
    with pytest.raises(ValidationError, match=said):
        settings(**more)


def test_a_directory_without_regions_is_refused():
    with pytest.raises(ValidationError, match="directory_url is for a deployment in several"):
        Settings(database_url=US, directory_url=DIRECTORY)


def test_the_same_database_url_as_the_home_region_s_is_accepted():
    assert settings(database_url=US).database_url == US
