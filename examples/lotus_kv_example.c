/*
 * lotus_kv_example.c - a small command-line key-value tool on the LotusDB C API.
 * Build: cc -o lotus_kv lotus_kv_example.c -llotus
 */
#include <stdio.h>
#include <string.h>
#include <lotus.h>

/* Print a readable message for a LotusDB status code. */
static const char *status_name(int rc)
{
    switch (rc) {
    case LOTUS_OK: return "ok";
    case LOTUS_ENOTFOUND: return "not found";
    case LOTUS_EBUSY: return "database is locked by another process";
    case LOTUS_ENOSPC: return "disk full";
    default: return "error";
    }
}

/* Store one key; returns 0 on success. */
int kv_set(lotus_db *db, const char *key, const char *value)
{
    int rc = lotus_put(db, key, strlen(key), value, strlen(value));
    if (rc != LOTUS_OK)
        fprintf(stderr, "put %s: %s\n", key, status_name(rc));
    return rc;
}

/* Print the value of one key; a missing key prints nothing and returns LOTUS_ENOTFOUND. */
int kv_show(lotus_db *db, const char *key)
{
    void *value = NULL;
    size_t len = 0;
    int rc = lotus_get(db, key, strlen(key), &value, &len);
    if (rc == LOTUS_OK) {
        printf("%.*s\n", (int)len, (const char *)value);
        lotus_free(value);
    }
    return rc;
}

int main(int argc, char *argv[])
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s DIR get KEY | DIR set KEY VALUE\n", argv[0]);
        return 2;
    }
    lotus_options opts = LOTUS_OPTIONS_INIT;
    opts.create_if_missing = 1;
    lotus_db *db = NULL;
    int rc = lotus_open(argv[1], &opts, &db);
    if (rc != LOTUS_OK) {
        fprintf(stderr, "open %s: %s\n", argv[1], status_name(rc));
        return 1;
    }
    if (strcmp(argv[2], "set") == 0 && argc == 5)
        rc = kv_set(db, argv[3], argv[4]);
    else
        rc = kv_show(db, argv[3]);
    lotus_close(db);
    return rc == LOTUS_OK ? 0 : 1;
}
