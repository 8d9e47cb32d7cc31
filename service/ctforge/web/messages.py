"""What the web page says when it refuses something; tests assert on these constants. A refusal by
the records (a parent not ready, a job running) shows the records' own message."""

LOGIN_NEEDED = "Log in with an API token to see this page."
TOKEN_REFUSED = "That token was not accepted: create one with `ctforge tokens create USER`."
TOKEN_EMPTY = "Paste an API token to log in."
LOGGED_OUT = "You are logged out."
CROSS_SITE = (
    "This form was not sent from this site's own page (its Origin or Referer names another site, "
    "or neither was sent): nothing was changed. Reload the page and send it again."
)
FORM_UNREADABLE = "The form could not be read: send it from the page as it is."
PAGE_NOT_FOUND = "There is no page at this address."
TEMPLATE_NOT_FOUND = "There is no template with id {id}."
WORKSPACE_NOT_FOUND = "There is no workspace with id {id}."
JOB_NOT_FOUND = "There is no job with id {id}."
ACTION_UNKNOWN = "There is no action {action!r}."
