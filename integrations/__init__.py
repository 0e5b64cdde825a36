"""Call other companies' JWT-authenticated APIs from Django, safely and fast."""
