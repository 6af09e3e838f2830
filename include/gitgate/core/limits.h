/*
 * limits.h - every named maximum in one place. A buffer that holds untrusted
 * input is created with one of these as its cap; exceeding it is an error
 * (GG_ELIMIT), never a reallocation without bound.
 */
#ifndef GITGATE_LIMITS_H
#define GITGATE_LIMITS_H

/* Tokens */
#define GG_MAX_TOKEN_LEN 8192         /* whole v4.public token, bytes */
#define GG_MAX_CLAIM_ITEMS 256        /* entries in repos / branches */
#define GG_MAX_CLAIM_STR 1024         /* one claim string */
#define GG_MAX_KEYS 16                /* verify keys configured at once */

/* Files we read whole */
#define GG_MAX_CONFIG_LEN (64 * 1024)
#define GG_MAX_KEYFILE_LEN 1024
/* tls.cert_file (a chain of a few PEM certificates) and tls.key_file. */
#define GG_MAX_TLS_FILE_LEN (64 * 1024)
/* gitgate doctor warns when the TLS certificate expires sooner. */
#define GG_TLS_EXPIRY_WARN_S (14 * 24 * 3600)
#define GG_MAX_REVOCATIONS_LEN (16 * 1024 * 1024)

/* HTTP */
#define GG_MAX_HEADER_LEN 8192        /* one request header value */
#define GG_MAX_TRUSTED_PROXIES 64     /* config "trusted_proxies" entries */
#define GG_MAX_XFF_HEADERS 32         /* X-Forwarded-For headers read */
#define GG_MAX_URL_LEN 2048
#define GG_RELAY_BUF (512 * 1024)     /* per-direction relay buffer */
#define GG_MAX_CONNECTIONS 1024       /* client connections at once */
#define GG_CONN_IDLE_S 120            /* no byte either way for this long */
/* Requests one token may have in flight at once (quota.h): an eighth of the
 * connections, far above what one sandbox's git runs in parallel. */
#define GG_MAX_REQUESTS_PER_TOKEN (GG_MAX_CONNECTIONS / 8)
/* A connection waiting for a request must complete its headers within
 * this; while more than GG_HEADER_PRESSURE wait at once, within the grace
 * (see connwatch.h: slowloris). */
#define GG_HEADER_DEADLINE_MS 20000
#define GG_HEADER_GRACE_MS 2000
#define GG_HEADER_PRESSURE (GG_MAX_CONNECTIONS / 2)

/* git protocol */
#define GG_MAX_PKT_LEN 65520          /* largest pkt-line incl. 4-byte length */
#define GG_MAX_PKT_DATA (GG_MAX_PKT_LEN - 4)
#define GG_MAX_PUSH_COMMANDS 10000    /* ref updates in one push */
#define GG_MAX_REFNAME 4096
/* A push may not create or move a ref with a longer name: libgit2 cannot
 * list a repository that has one (GIT_REFNAME_MAX), so one such ref upstream
 * would stop every history check on the repository. */
#define GG_MAX_NEW_REFNAME 1023
#define GG_MAX_PUSH_OPTIONS 1000
#define GG_MAX_REPORT_LEN (4 * 1024 * 1024) /* upstream receive-pack reply */

/* Ref patterns */
#define GG_MAX_PATTERN_LEN 1024

/* Push enforcement (pktline, receivepack, policy, report) */
#define GG_MAX_SIDEBAND_OLD_PKT 1000  /* old "side-band": whole pkt-line cap */
#define GG_MAX_PUSH_HEADER (16 * 1024 * 1024) /* command list + push options */
#define GG_MAX_PUSH_CAPS 4096         /* capability list on the first command */
#define GG_MAX_REASON_LEN 200         /* policy reason shown by git push */
#define GG_MAX_REPORT_REFS GG_MAX_PUSH_COMMANDS /* ref lines in a report */

/* Token claims (appended by the token module) */
#define GG_MAX_REPO_PART 100          /* owner or name in "owner/name" */
#define GG_JTI_RANDOM_BYTES 18        /* 144 random bits per minted jti */
#define GG_MAX_TTL (7 * 86400)        /* mint refuses a longer --ttl */
#define GG_DEFAULT_TTL 3600           /* mint without --ttl */

/* Pushes */
#define GG_MAX_PUSH_BYTES ((uint64_t)2 << 30) /* decoded body; GitHub's cap */
/* A push is refused once spooling it would leave less than this free on
 * cache_dir's filesystem (checked before every write): a few 2 GiB pushes
 * at once (a 2 MiB gzip body can be one) must not fill the disk the audit
 * log is written to. */
#define GG_SPOOL_RESERVE ((uint64_t)256 << 20)

/* Pack scanning (packscan): past these the push is refused (fail closed),
 * never left to full indexing, whose memory is unbounded. */
#define GG_MAX_SCAN_ENTRIES (8u * 1024 * 1024) /* objects in a pushed pack */
#define GG_MAX_SCAN_OBJECT (4 * 1024 * 1024)   /* largest commit (or delta) kept */
#define GG_MAX_DELTA_DEPTH 128                 /* git's default is 50 */
#define GG_MAX_SCAN_PASSES 8                   /* over REF_DELTAs in pack order */
/* Full libgit2 indexing, for a pack the scan could not settle, costs about
 * 140 bytes of memory per object, and holds whole objects (a delta's base
 * and result) in memory: only packs within both of these get it. */
#define GG_MAX_INDEX_OBJECTS (256u * 1024)
#define GG_MAX_INDEX_OBJECT_SIZE ((uint64_t)32 << 20)
/* Walks of the mirror's history one push may cost (about one per updated
 * branch; each is as long as the history between old and new). */
#define GG_MAX_HISTORY_WALKS 64
#define GG_MAX_COMMIT_PARENTS 1024             /* git.git's largest octopus: 66 */
#define GG_MAX_SCAN_PARENTS (1024u * 1024)     /* all commits' parents, 20 B each */
#define GG_SCAN_WORK_FACTOR 8                  /* resolve+walk work per pack byte */
#define GG_SCAN_WORK_BASE ((uint64_t)64 << 20) /* ... plus this much */

/* Site policy (sitepolicy); its secret rules are bounded below. The pattern
 * count covers every list of the file together, so that no merge of a
 * repos entry into the top level can exceed it either. */
#define GG_MAX_POLICY_LEN (1024 * 1024) /* the policy file */
#define GG_MAX_POLICY_PATTERNS 4096   /* ref patterns and globs, all lists */
#define GG_MAX_POLICY_REPOS 1024      /* entries of "repos" */
#define GG_MAX_POLICY_PROBLEMS 100    /* problem lines kept; more counted */

/* Secret scan (secretscan) */
#define GG_MAX_SECRET_RULES 256       /* custom rules (secret_rules) */
#define GG_MAX_SECRET_RULE_ID 64      /* one rule id, [A-Za-z0-9._-] */
#define GG_MAX_SECRET_REGEX 1024      /* one custom rule's regex */
#define GG_MAX_SECRET_LITERAL 4096    /* the upstream secret, matched as is */
/* A shorter upstream secret would match ordinary text. */
#define GG_MIN_SECRET_LITERAL 8
/* git's FIRST_FEW_BYTES: a NUL among them makes a blob binary. */
#define GG_BINARY_PROBE_LEN 8000


/* Content checks (content.c): the work one push may cost. Past any of
 * them the ref is refused ("gitgate could not check content: ..."). */
#define GG_MAX_CONTENT_COMMITS 100000       /* new commits, all refs */
#define GG_MAX_CONTENT_CHANGES 2000000      /* changed paths, all commits */
#define GG_MAX_COMMIT_CHANGES 200000        /* changed paths, one commit */
#define GG_MAX_CONTENT_PATH 4096            /* bytes of one path */
#define GG_MAX_CONTENT_DEPTH 128            /* directories of one path */
#define GG_MAX_CONTENT_BYTES (16ULL << 30)  /* blob bytes read for the scan */
/* Largest blob the secret scan reads (whole, with its parent's version:
 * libgit2 has no streaming read of packed objects). */
#define GG_MAX_SCAN_BLOB (32 * 1024 * 1024)
#define GG_MAX_CONTENT_FINDINGS 100         /* findings kept per ref */
#define GG_MAX_PARENTS_CHECKED 16           /* parents of one commit */
/* libgit2 (mirror.c): bytes gathered per indexer append, and its pack
 * mapping (window size, and the most mapped at once per process). */
#define GG_INDEX_CHUNK (1024 * 1024)
#define GG_MWINDOW_SIZE (4 * 1024 * 1024)
#define GG_MWINDOW_MAPPED_LIMIT (16 * 1024 * 1024)

/* Upstream credential from a GitHub App (upstream/) */
#define GG_MAX_APP_KEY_LEN (16 * 1024) /* PEM private key file */
#define GG_MAX_API_REPLY (64 * 1024)   /* one GitHub API answer */
#define GG_MAX_APP_TOKEN_LEN 4096      /* one installation token */
#define GG_APP_API_CONNECT_S 5
#define GG_APP_API_TIMEOUT_S 10        /* whole API call */
#define GG_APP_JWT_LIFE_S 540          /* exp - now; GitHub allows 600 */
#define GG_APP_JWT_BACKDATE_S 60       /* now - iat, for clock drift */
#define GG_APP_TOKEN_MARGIN_S 300      /* drop a token this long before expiry */
#define GG_APP_INSTALL_TTL_S 3600      /* installation id cached */
#define GG_APP_INSTALL_MISS_TTL_S 60   /* "not installed" cached */
/* A 401 from the git upstream this soon after a token was minted may be
 * GitHub's replication delay: retried once after the wait. */
#define GG_APP_FRESH_S 60
#define GG_APP_REPLICATION_WAIT_MS 1000
#define GG_MAX_REPLAY_BODY (64 * 1024) /* upload-pack body kept for it */
#define GG_MAX_CRED_ENTRIES 4096       /* cached tokens or installations */


/* ---- fetch cache (src/cache) ---- */
#define GG_CACHE_DEFAULT_MAX_SIZE (50ULL << 30) /* fetch_cache.max_size */
/* Upstream's refs, as gitgate's own last fetch saw them, count as current
 * for this long: a pack request within it is judged against them without
 * asking upstream again. Short, so that a ref deleted or force-pushed
 * upstream stops being served within it. */
#define GG_CACHE_FRESH_MS 5000
/* An upload-pack request body held to decide where to serve it (decoded
 * from gzip when git compressed it); a bigger one is relayed upstream. */
#define GG_MAX_CACHE_BODY (4 * 1024 * 1024)
/* Wants, haves and shallow lines of one request that the cache reads. */
#define GG_MAX_CACHE_WANTS 100000
/* Bytes of an upload-pack's stderr kept for the log line. */
#define GG_MAX_CACHE_STDERR 512
/* Audit (audit/): the "instance" name in every line ($GITGATE_INSTANCE or
 * the host name; a DNS name is at most 253). */
#define GG_MAX_INSTANCE_LEN 253

#endif
