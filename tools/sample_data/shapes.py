"""Rates and shapes of the simulated world (docs/sample-data.md documents them: change both)."""

from __future__ import annotations

import numpy as np

DAY = 86_400
YEAR = 365.25 * DAY

ANONYMOUS_ONLY_RATE = 0.20  # people who only ever browse anonymously (never identified anywhere)
HAS_PHONE_RATE = 0.85  # known people with a phone number
ALT_EMAIL_RATE = 0.08  # known people who also use a second (work) address
HOUSEHOLD_RATE = 0.03  # known people with a phone who share it with a household partner
WEB_RATE = 0.75  # known people with tracked web devices
DEVICE_IDENTIFY_RATE = 0.80  # devices of known people on which they identify at least once
KIOSK_USER_RATE = 0.08  # known web people who also identify on a shared in-store kiosk
REGISTERED_RATE = 0.55  # known people with a shop account (shop_customer_id = Segment user_id)
LOGGED_IN_ORDER_RATE = 0.85  # orders of registered people placed while logged in
BUYER_RATE = 0.70  # known people who buy at least once (first purchase at acquisition)
LOYALTY_STORE_RATE = 0.60  # store shoppers in the loyalty programme
LOYALTY_ONLINE_RATE = 0.08  # online-only shoppers in the loyalty programme
CARD_SCANNED_RATE = 0.80  # store transactions of members with the loyalty card scanned
CRM_RATE = 0.35  # known people in the CRM
CRM_DUPLICATE_RATE = 0.04  # CRM people entered twice (two contact_ids)
EMAIL_SUBSCRIBER_RATE = 0.45  # known people on the newsletter list
CAMPAIGN_EVERY_DAYS = 14
CAMPAIGN_RECEIVE_RATE = 0.35  # share of campaigns (after subscribing) a subscriber is sent
SUPPORT_RATE = 0.12  # known people with at least one support ticket
CONSENT_RATE = 0.55  # known people with consent decisions by email or phone
COOKIE_CONSENT_RATE = 0.25  # personal devices with cookie-banner decisions (anonymous_id)
CONSENT_CHANGE_RATE = 0.15  # decisions later reversed
PRIVACY_REQUEST_RATE = 0.003  # known people filing an erasure or access request
JUNK_CONTACT_RATE = 0.01  # email/phone cells replaced by a placeholder
JUNK_NAME_RATE = 0.005  # name cells replaced by a placeholder
DUPLICATE_ROW_RATE = 0.005  # event rows delivered twice (exact copies)
TIMESTAMP_FORMAT_WEIGHTS = (0.94, 0.04, 0.02)  # ...Z, 'YYYY-MM-DD HH:MM:SS+HH:MM', ...SS.mmmZ
OFFSET_MINUTES = np.array([60, 120, -300, -480, 330, -180], dtype=np.int64)

COUNTRIES = ("US", "GB", "DE")
COUNTRY_WEIGHTS = (0.88, 0.07, 0.05)
CURRENCIES = ("USD", "GBP", "EUR")  # by country
CURRENCY_RATES = np.array([1.0, 0.79, 0.92])  # catalogue prices are USD
CURRENCY_VARIANTS = (("usd", "$", "US$"), ("gbp", "£"), ("eur", "€"))
COUNTRY_SPELLINGS = (("US", "USA", "United States", "us"), ("GB", "UK", "United Kingdom"),
                     ("DE", "Germany", "Deutschland"))
CURRENCY_VARIANT_RATE = 0.03
CODE_CASE_VARIANT_RATE = 0.03  # statuses, tiers, event types written capitalised

FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark",
    "Sandra", "Steven", "Ashley", "Paul", "Emily", "Andrew", "Michelle", "Joshua", "Amanda",
    "Oliver", "Amelia", "Harry", "Isla", "George", "Olivia", "Lukas", "Hannah", "Leon", "Lena",
    "Jürgen", "Zoë", "Mary Ann", "José", "Aisha", "Wei", "Priya", "Mohammed", "Sofia", "Mateo",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Clark",
    "Lewis", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker", "Adams",
    "Evans", "Hughes", "Patel", "Khan", "Müller", "Schmidt", "Schneider", "Fischer", "Weber",
    "O'Brien", "van der Berg", "Nguyen", "Kim", "Chen", "Singh", "Rossi", "Dubois",
)
CITIES = (
    ("New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "Philadelphia", "San Antonio",
     "San Diego", "Dallas", "Austin", "Seattle", "Denver", "Boston", "Portland", "Atlanta"),
    ("London", "Manchester", "Birmingham", "Leeds", "Glasgow", "Bristol", "Edinburgh"),
    ("Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Stuttgart", "Düsseldorf"),
)
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com",
                 "btinternet.com", "gmx.de", "web.de", "t-online.de")
EMAIL_DOMAIN_WEIGHTS = np.array([
    [0.42, 0.18, 0.12, 0.12, 0.12, 0.04, 0.00, 0.00, 0.00, 0.00],  # US
    [0.40, 0.10, 0.15, 0.12, 0.08, 0.00, 0.15, 0.00, 0.00, 0.00],  # GB
    [0.30, 0.05, 0.05, 0.08, 0.04, 0.00, 0.00, 0.25, 0.18, 0.05],  # DE
])
WORK_DOMAINS = ("acme-corp.com", "globex.com", "initech.com", "umbrella-inc.com", "hooli.com",
                "vandelay-industries.com")
EMAIL_PATTERN_WEIGHTS = (0.35, 0.20, 0.15, 0.15, 0.15)  # first.last, flast, first_last, ...

# Raw spellings: slot 0 is canonical; rows pick a slot with these weights.
EMAIL_ROW_WEIGHTS = (0.76, 0.10, 0.08, 0.06)  # canonical, Title.Case, '  Title.Case ', UPPER
PHONE_ROW_WEIGHTS = (0.35, 0.30, 0.20, 0.15)  # E.164, then three per-person habitual formats
NAME_ROW_WEIGHTS = (0.86, 0.05, 0.05, 0.04)  # Title, UPPER, lower, '  Title '
PHONE_TEMPLATES = (  # '#' takes the next digit of the 10-digit national number
    ("+1##########", "(###) ###-####", "###.###.####", "###-###-####", "+1 ### ### ####",
     "##########", "1-###-###-####", "+1 (###) ###-####"),
    ("+44##########", "+44 #### ######", "0044 #### ######", "+44-####-######",
     "0044##########", "+44 ### ### ####"),
    ("+49##########", "+49 ### #######", "0049 ### #######", "+49-###-#######",
     "0049##########", "+49 (###) #######"),
)

JUNK_EMAILS = ("test@test.com", "noemail@noemail.com", "N/A", "", "none@none.com")
JUNK_PHONES = ("0000000000", "123456789", "N/A", "", "1111111111")
JUNK_NAMES = ("N/A", "test", "", "xxx")
JUNK_IDS = ("N/A", "null", "")
BAD_TIMESTAMPS = ("2025-13-45", "2025-02-30T10:00:00Z", "not a date")
BAD_NUMBERS = ("12,3x", "abc", "1.2.3")
JUNK_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "segment_identifies": {"email": JUNK_EMAILS, "phone": JUNK_PHONES,
                           "first_name": JUNK_NAMES, "last_name": JUNK_NAMES},
    "crm_contacts": {"email": JUNK_EMAILS, "phone": JUNK_PHONES,
                     "first_name": JUNK_NAMES, "last_name": JUNK_NAMES},
    "shop_orders": {"email": JUNK_EMAILS, "phone": JUNK_PHONES},
    "loyalty_members": {"email": JUNK_EMAILS, "phone": JUNK_PHONES,
                        "first_name": JUNK_NAMES, "last_name": JUNK_NAMES},
    "support_tickets": {"requester_email": JUNK_EMAILS, "requester_phone": JUNK_PHONES},
}
DUPLICATE_SOURCES = frozenset({"segment_identifies", "segment_tracks", "segment_pages",
                               "email_events", "pos_transactions", "shop_orders", "consents"})

CATEGORIES = ("Apparel", "Footwear", "Accessories", "Home", "Beauty", "Electronics")
CATEGORY_NOUNS = (
    ("T-Shirt", "Hoodie", "Jeans", "Jacket", "Dress", "Sweater"),
    ("Sneakers", "Boots", "Sandals", "Loafers", "Running Shoes"),
    ("Backpack", "Wallet", "Sunglasses", "Watch", "Scarf", "Cap"),
    ("Candle", "Throw Blanket", "Mug Set", "Vase", "Cushion"),
    ("Face Cream", "Lip Balm", "Shampoo", "Perfume", "Serum"),
    ("Headphones", "Speaker", "Charger", "Smartwatch", "Earbuds"),
)
CATEGORY_BASE_PRICE = (45.0, 90.0, 35.0, 30.0, 25.0, 120.0)
ADJECTIVES = ("Classic", "Everyday", "Premium", "Organic", "Urban", "Vintage", "Essential",
              "Sport", "Travel", "Studio")
BASE_URL = "https://shop.example.com"
BLOG_POSTS = ("how-to-layer-for-winter", "sneaker-care-guide", "gift-ideas-under-50",
              "our-sustainability-report", "home-office-essentials")
REFERRERS = (None, "https://www.google.com/", "https://www.facebook.com/",
             "https://www.instagram.com/", "https://www.bing.com/", BASE_URL + "/")
REFERRER_WEIGHTS = (0.35, 0.30, 0.08, 0.07, 0.05, 0.15)
URL_SUFFIXES = ("", "?utm_source=newsletter&utm_medium=email", "?utm_source=google&utm_medium=cpc")
URL_SUFFIX_WEIGHTS = (0.90, 0.06, 0.04)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
KIOSK_USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) StoreKiosk/3.2 Chrome/118.0"
CONSENT_PURPOSES = ("email_marketing", "advertising", "analytics", "personalisation")
CONSENT_PURPOSE_RATES = np.array([0.9, 0.5, 0.6, 0.4])
CONSENT_SOURCES = ("web_form", "preference_center", "checkout", "pos", "crm_import")
SUPPORT_CHANNELS = ("email", "chat", "phone", "web")
SUPPORT_STATUSES = ("solved", "closed", "open", "pending")

PRIME_MULTIPLIER = 2_654_435_761  # prime: x -> (x * P + salt) mod 10^k / 2^k is a bijection
