"""Adversarial landing data for identity: people with ground truth and the phenomena real exports show.

Each phenomenon has its own rate (`Phenomena`); `ALL_ON` switches every one on. The generator writes
the landing files the project reads (docs/landing-contract.md: one CSV per source) and, under
`_ground_truth/` (ignored by the loader), `truth.parquet` (source, source_record_id, person_id) and
`identifiers.parquet` (source, source_record_id, identifier): the canonical identifiers a perfect
linker would see in each record (one mailbox per Gmail spelling, E.164 phones), for the oracle.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import phonenumbers
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Phenomena:
    """Rate of each phenomenon (0 = off)."""

    household_phones: float = 0.0  # share of people in a household sharing one landline
    family_devices: float = 0.0  # share of people in a household sharing one family tablet
    recycled_phones: float = 0.0  # share of people whose mobile number belonged to someone before
    shared_mailboxes: float = 0.0  # share of people sharing their mailbox with a partner
    guest_placeholders: float = 0.0  # share of guest orders (and a third as many CRM rows) written
    # with a placeholder email that is on no list
    account_migrations: float = 0.0  # share of account holders who move to a new user id
    international: float = 0.0  # share of people with a KR/GB/DE mobile (national format in CRM)
    gmail_spellings: float = 0.0  # share of a Gmail user's records spelled with dots or +tag
    display_names: float = 0.0  # share of CRM emails written `Name <email>` or `mailto:email`
    typos: float = 0.0  # share of email and phone values with one typo
    nicknames: float = 0.0  # share of named records written with a nickname

    def only(self, name: str) -> Phenomena:
        """The same rate for `name`, every other phenomenon off."""
        return replace(NONE, **{name: getattr(self, name)})


NONE = Phenomena()
ALL_ON = Phenomena(household_phones=0.08, family_devices=0.04, recycled_phones=0.02,
                   shared_mailboxes=0.02, guest_placeholders=0.3, account_migrations=0.08,
                   international=0.1, gmail_spellings=0.3, display_names=0.3, typos=0.02,
                   nicknames=0.1)
PHENOMENA: tuple[str, ...] = tuple(f.name for f in fields(Phenomena))

# Guest-checkout placeholders seen in real exports, none of them on placeholder_emails.
PLACEHOLDERS = ("customer@store.com", "orders@mystore.com", "checkout@shop.com",
                "no.email@company.com", "guest.checkout@store.com", "customer@customer.com")
FIRST = ("Ana", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
         "Kim", "Liam", "Maria", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sam", "Tara", "Umar",
         "Vera", "Will", "Xenia", "Yusuf", "Zoe", "Robert", "William", "Elizabeth", "Katherine",
         "Michael", "James", "Jennifer", "Daniel", "Thomas", "Christopher", "Minji", "Joon",
         "Seo-yeon", "Hannah", "Lukas", "Amelia", "Oliver", "Priya", "Arjun", "Mei", "Chen")
LAST = ("Khan", "Kim", "Lee", "Park", "Smith", "Jones", "Garcia", "Muller", "Schmidt", "Brown",
        "Taylor", "Wilson", "Martin", "Lopez", "Nguyen", "Patel", "Singh", "Cohen", "Rossi",
        "Silva", "Novak", "Ivanova", "Okafor", "Mensah", "Larsen", "Berg", "Costa", "Dubois",
        "Fischer", "Weber", "Walker", "Young", "Hall", "Allen", "King", "Wright", "Scott")
NICKNAMES = {"Robert": "Bob", "William": "Bill", "Elizabeth": "Liz", "Katherine": "Kate",
             "Michael": "Mike", "James": "Jim", "Jennifer": "Jen", "Daniel": "Dan",
             "Thomas": "Tom", "Christopher": "Chris", "Samuel": "Sam", "Olga": "Olya"}
DOMAINS = ("gmail.com", "gmail.com", "gmail.com", "yahoo.com", "outlook.com", "hotmail.com",
           "icloud.com", "proton.me", "fastmail.com", "web.de")
US_AREAS = ("212", "213", "305", "312", "404", "415", "503", "617", "646", "702", "713", "718",
            "206", "303", "480", "512", "614", "919")
# Mobile numbers: national significant number = head + that many random digits.
MOBILE = {"KR": ("10", 8), "GB": ("7", 9), "DE": ("151", 8)}
T0 = datetime(2023, 1, 1, tzinfo=timezone.utc)
SPAN_SECONDS = int(timedelta(days=700).total_seconds())


@dataclass(frozen=True)
class Phone:
    e164: str
    country: str

    def text(self, rng: random.Random, national: bool) -> str:
        """A spelling of the number: national format (with a country column) or international."""
        number = phonenumbers.parse(self.e164)
        if self.country == "US":
            style = rng.choice([phonenumbers.PhoneNumberFormat.E164,
                                phonenumbers.PhoneNumberFormat.NATIONAL,
                                phonenumbers.PhoneNumberFormat.INTERNATIONAL])
            return phonenumbers.format_number(number, style)
        style = (phonenumbers.PhoneNumberFormat.NATIONAL if national
                 else phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        return phonenumbers.format_number(number, style)


@dataclass
class PhoneUse:
    phone: Phone
    start: int = 0  # seconds after T0
    end: int = SPAN_SECONDS


@dataclass
class Person:
    person_id: str
    first: str
    last: str
    email: str
    country: str
    phones: list[PhoneUse] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)
    migrated_at: int = SPAN_SECONDS
    shop_id: str | None = None
    loyalty_id: str | None = None
    crm_id: str | None = None
    devices: list[str] = field(default_factory=list)

    def user_id_at(self, at: int) -> str | None:
        if not self.user_ids:
            return None
        return self.user_ids[-1] if at >= self.migrated_at else self.user_ids[0]

    def phone_at(self, rng: random.Random, at: int) -> Phone | None:
        usable = [use.phone for use in self.phones if use.start <= at < use.end]
        return rng.choice(usable) if usable else None


def mailbox(email: str) -> str:
    """The canonical mailbox: Gmail ignores dots and +tags in the local part."""
    local, domain = email.lower().split("@")
    if domain in ("gmail.com", "googlemail.com"):
        return local.split("+")[0].replace(".", "") + "@gmail.com"
    return email.lower()


def digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


class World:
    """Everything drawn from one seed: people, their identifiers and the shared ones."""

    def __init__(self, people: int, seed: int, phenomena: Phenomena) -> None:
        self.rng = random.Random(seed)
        self.rates = phenomena
        self.used_phones: set[str] = set()
        self.used_mailboxes: set[str] = set()
        self.people = [self.person(i) for i in range(people)]
        self.share_households()
        self.share_mailboxes()
        self.recycle_phones()

    def valid_phone(self, country: str) -> Phone:
        while True:
            if country == "US":
                national = (self.rng.choice(US_AREAS) + str(self.rng.randint(2, 9))
                            + f"{self.rng.randint(0, 99):02d}" + f"{self.rng.randint(0, 9999):04d}")
                prefix = "+1"
            else:
                head, tail = MOBILE[country]
                national = head + "".join(str(self.rng.randint(0, 9)) for _ in range(tail))
                prefix = "+" + str(phonenumbers.country_code_for_region(country))
            number = phonenumbers.parse(prefix + national)
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if phonenumbers.is_valid_number(number) and e164 not in self.used_phones:
                self.used_phones.add(e164)
                return Phone(e164, country)

    def person(self, index: int) -> Person:
        rng = self.rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        while True:
            local = rng.choice([f"{first}.{last}", f"{first}{last}", f"{first[0]}{last}",
                                f"{last}.{first}"]).lower().replace("-", "")
            email = f"{local}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}"
            if mailbox(email) not in self.used_mailboxes:
                self.used_mailboxes.add(mailbox(email))
                break
        country = (rng.choice(sorted(MOBILE)) if rng.random() < self.rates.international else "US")
        person = Person(person_id=f"P{index:07d}", first=first, last=last, email=email,
                        country=country)
        person.phones = [PhoneUse(self.valid_phone(country))]
        if rng.random() < 0.3:
            person.phones.append(PhoneUse(self.valid_phone(country)))
        if rng.random() < 0.1:
            person.phones.append(PhoneUse(self.valid_phone("US")))
        if rng.random() < 0.65:
            person.user_ids = [f"usr_{index:07d}"]
            if rng.random() < 0.5:
                person.shop_id = f"SC{index:07d}"
            if rng.random() < self.rates.account_migrations:
                person.user_ids.append(f"acct-{rng.getrandbits(40):010x}")
                person.migrated_at = rng.randint(SPAN_SECONDS // 4, 3 * SPAN_SECONDS // 4)
        if rng.random() < 0.45:
            person.loyalty_id = f"LY{index:08d}"
        if rng.random() < 0.6:
            person.crm_id = f"crm-{index:07d}"
        person.devices = [f"anon-{rng.getrandbits(48):012x}" for _ in range(rng.randint(1, 3))]
        return person

    def households(self, rate: float, largest: int) -> list[list[Person]]:
        """Groups of 2 to `largest` people drawn from a share `rate` of everyone."""
        members = [p for p in self.people if self.rng.random() < rate]
        groups = []
        while len(members) >= 2:
            size = min(len(members), self.rng.randint(2, largest))
            groups.append(members[:size])
            members = members[size:]
        return groups

    def share_households(self) -> None:
        """Households of 2-4 sharing one landline; of 2-3 sharing one family tablet."""
        for household in self.households(self.rates.household_phones, largest=4):
            landline = self.valid_phone("US")
            for person in household:
                person.phones.append(PhoneUse(landline))
        for household in self.households(self.rates.family_devices, largest=3):
            tablet = f"anon-family-{self.rng.getrandbits(40):010x}"
            for person in household:
                person.devices.append(tablet)

    def share_mailboxes(self) -> None:
        """Couples: the second partner uses the first one's mailbox everywhere."""
        sharing = [p for p in self.people if self.rng.random() < self.rates.shared_mailboxes]
        for first, second in zip(sharing[::2], sharing[1::2], strict=False):
            second.email = first.email

    def recycle_phones(self) -> None:
        """A number given up by one person is later assigned to another."""
        for person in self.people:
            if self.rng.random() >= self.rates.recycled_phones:
                continue
            previous = self.rng.choice(self.people)
            if previous is person:
                continue
            handover = self.rng.randint(SPAN_SECONDS // 3, 2 * SPAN_SECONDS // 3)
            use = previous.phones[0]
            use.end = min(use.end, handover)
            person.phones.append(PhoneUse(use.phone, start=handover))


class Landing:
    """Writes the landing CSVs and the ground truth of every record."""

    def __init__(self, world: World, out: Path) -> None:
        self.world = world
        self.rng = random.Random(world.rng.random())
        self.out = out
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.truth: list[tuple[str, str, str]] = []
        self.identifiers: list[tuple[str, str, str]] = []
        self.counter = 0

    def at(self, start: int = 0, end: int = SPAN_SECONDS) -> int:
        return self.rng.randint(start, max(start, end - 1))

    def record(self, source: str, person: Person, row: dict[str, Any],
               keys: list[str | None]) -> None:
        record_id = str(row[RECORD_ID[source]])
        self.rows.setdefault(source, []).append(row)
        self.truth.append((source, record_id, person.person_id))
        for key in keys:
            if key:
                self.identifiers.append((source, record_id, key))

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:09d}"

    def email(self, person: Person, *, crm: bool = False) -> tuple[str, str]:
        """A spelling of the person's email and the oracle's key for it."""
        rates, rng = self.world.rates, self.rng
        text, key = person.email, "email:" + mailbox(person.email)
        local, domain = text.split("@")
        if domain == "gmail.com" and rng.random() < rates.gmail_spellings:
            plain = local.replace(".", "")
            cut = rng.randint(1, len(plain) - 1)
            text = rng.choice([f"{plain[:cut]}.{plain[cut:]}", f"{local}+shop",
                               f"{plain}+{rng.choice(['news', 'orders', 'x'])}"]) + "@" + domain
        if rng.random() < rates.typos:
            chars = list(text.split("@")[0])
            i = rng.randrange(len(chars) - 1)
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
            text = "".join(chars) + "@" + domain
            key = "email_typo:" + text.lower()
        if crm and rng.random() < rates.display_names:
            text = rng.choice([f"{person.first} {person.last} <{text}>", f"mailto:{text}"])
        return text, key

    def phone(self, person: Person, at: int, *, national: bool = False) -> tuple[str, str | None]:
        phone = person.phone_at(self.rng, at)
        if phone is None:
            return "", None
        text, key = phone.text(self.rng, national), "phone:" + phone.e164
        if self.rng.random() < self.world.rates.typos:
            spots = [i for i, c in enumerate(text) if c.isdigit()][-7:]
            i = self.rng.choice(spots)
            text = text[:i] + str((int(text[i]) + self.rng.randint(1, 9)) % 10) + text[i + 1:]
            key = "phone_typo:" + digits(text)
        return text, key

    def first_name(self, person: Person) -> str:
        if person.first in NICKNAMES and self.rng.random() < self.world.rates.nicknames:
            return NICKNAMES[person.first]
        return person.first

    def write_person(self, person: Person) -> None:
        self.identifies(person)
        self.pages(person)
        self.orders(person)
        self.crm(person)
        self.loyalty(person)
        self.support(person)

    def identifies(self, person: Person) -> None:
        rng = self.rng
        count = rng.randint(1, 4) if person.user_ids else int(rng.random() < 0.3)
        for _ in range(count):
            at = self.at()
            user_id = person.user_id_at(at)
            device = rng.choice(person.devices)
            email, email_key = self.email(person) if rng.random() < 0.7 else ("", None)
            phone, phone_key = self.phone(person, at) if rng.random() < 0.3 else ("", None)
            named = rng.random() < 0.6
            row = {"id": self.next_id("idf-"), "anonymous_id": device, "user_id": user_id or "",
                   "timestamp": stamp(at), "email": email, "phone": phone,
                   "first_name": self.first_name(person) if named else "",
                   "last_name": person.last if named else ""}
            self.record("segment_identifies", person, row, [
                "anonymous_id:" + device, "user_id:" + user_id if user_id else None,
                email_key, phone_key])

    def pages(self, person: Person) -> None:
        for device in person.devices:
            for _ in range(self.rng.randint(1, 2)):
                at = self.at()
                # on the family tablet every member with an account signs in to their own
                signed_in = device.startswith("anon-family-") or self.rng.random() < 0.5
                user_id = person.user_id_at(at) if signed_in else None
                row = {"id": self.next_id("pg-"), "anonymous_id": device,
                       "user_id": user_id or "", "timestamp": stamp(at), "url": "https://shop/x",
                       "path": "/x", "referrer": "", "title": "X"}
                self.record("segment_pages", person, row, [
                    "anonymous_id:" + device, "user_id:" + user_id if user_id else None])

    def orders(self, person: Person) -> None:
        rng = self.rng
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3, 4])):
            at = self.at()
            guest = person.shop_id is None or rng.random() < 0.2
            if guest and rng.random() < self.world.rates.guest_placeholders:
                email, email_key = rng.choice(PLACEHOLDERS), "email:placeholder"
            else:
                email, email_key = self.email(person)
            phone, phone_key = self.phone(person, at) if rng.random() < 0.7 else ("", None)
            # the billing name a checkout asks for; some exports leave it out
            named = rng.random() < 0.9
            row = {"order_id": self.next_id("ord-"), "shop_customer_id": "" if guest
                   else person.shop_id, "email": email, "phone": phone,
                   "first_name": self.first_name(person) if named else "",
                   "last_name": person.last if named else "", "ordered_at": stamp(at),
                   "total_amount": f"{rng.randint(500, 30000) / 100:.2f}", "currency": "USD",
                   "status": "paid"}
            self.record("shop_orders", person, row, [
                email_key if email_key != "email:placeholder" else None, phone_key,
                None if guest else "shop_customer_id:" + str(person.shop_id)])

    def crm(self, person: Person) -> None:
        if person.crm_id is None:
            return
        rng, at = self.rng, self.at()
        if rng.random() < self.world.rates.guest_placeholders / 3:
            email, email_key = rng.choice(PLACEHOLDERS), None
        else:
            email, email_key = self.email(person, crm=True)
        phone, phone_key = self.phone(person, at, national=True)
        row = {"contact_id": person.crm_id, "email": email, "phone": phone,
               "first_name": self.first_name(person), "last_name": person.last,
               "city": "Springfield", "country": person.country, "created_at": stamp(at),
               "updated_at": stamp(at)}
        self.record("crm_contacts", person, row, [
            "crm_contact_id:" + person.crm_id, email_key, phone_key])

    def loyalty(self, person: Person) -> None:
        if person.loyalty_id is None:
            return
        rng, at = self.rng, self.at()
        email, email_key = self.email(person) if rng.random() < 0.8 else ("", None)
        phone, phone_key = self.phone(person, at)
        row = {"loyalty_id": person.loyalty_id, "email": email, "phone": phone,
               "first_name": self.first_name(person), "last_name": person.last, "tier": "gold",
               "joined_at": stamp(at)}
        loyalty_key = "loyalty_id:" + person.loyalty_id
        self.record("loyalty_members", person, row, [loyalty_key, email_key, phone_key])
        for _ in range(rng.randint(0, 3)):
            row = {"transaction_id": self.next_id("pos-"), "store_id": "S1",
                   "loyalty_id": person.loyalty_id, "transacted_at": stamp(self.at()),
                   "total_amount": "12.50", "currency": "USD"}
            self.record("pos_transactions", person, row, [loyalty_key])

    def support(self, person: Person) -> None:
        rng = self.rng
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            at = self.at()
            email, email_key = self.email(person) if rng.random() < 0.8 else ("", None)
            phone, phone_key = self.phone(person, at) if rng.random() < 0.5 else ("", None)
            if not email and not phone:
                continue
            row = {"ticket_id": self.next_id("tk-"), "requester_email": email,
                   "requester_phone": phone, "channel": "email", "status": "solved",
                   "created_at": stamp(at), "solved_at": stamp(at), "csat": "4"}
            self.record("support_tickets", person, row, [email_key, phone_key])

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        for source, rows in self.rows.items():
            with (self.out / f"{source}.csv").open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        truth_dir = self.out / "_ground_truth"
        truth_dir.mkdir(exist_ok=True)
        names = ["source", "source_record_id"]
        pq.write_table(pa.table(dict(zip([*names, "person_id"], zip(*self.truth), strict=True))),
                       truth_dir / "truth.parquet")
        pq.write_table(pa.table(dict(zip([*names, "identifier"], zip(*self.identifiers),
                                         strict=True))),
                       truth_dir / "identifiers.parquet")


RECORD_ID = {"segment_identifies": "id", "segment_pages": "id", "shop_orders": "order_id",
             "crm_contacts": "contact_id", "loyalty_members": "loyalty_id",
             "pos_transactions": "transaction_id", "support_tickets": "ticket_id"}


def stamp(at: int) -> str:
    return (T0 + timedelta(seconds=at)).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate(people: int, seed: int, out: Path, phenomena: Phenomena = ALL_ON) -> Path:
    """Write an adversarial landing folder for `people` people; returns its _ground_truth folder."""
    world = World(people, seed, phenomena)
    landing = Landing(world, out)
    for person in world.people:
        landing.write_person(person)
    landing.write()
    return out / "_ground_truth"
