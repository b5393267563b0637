/* federation.h5: read/write of every round-shaping setting. See federation.h. */
#include "pipelines/federation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "libckpt/h5part.h"
#include "libckpt/zstd_filter.h"
#include "pipelines/version.h"

void pipe_federation_set_algo(pipe_federation *f, pipe_algo_kind kind)
{
    pipe_algo_default(kind, &f->algo);
}

xffl_status pipe_federation_default(const char *preset, int vocab, pipe_federation *f)
{
    ckpt_model_config model;
    XFFL_RETURN_IF(strlen(preset) >= sizeof f->preset, XFFL_ERR_USAGE, "preset name '%s' too long", preset);
    XFFL_FORWARD(ckpt_model_preset(preset, vocab, &model));
    return pipe_federation_default_model(preset, &model, f);
}

xffl_status pipe_federation_default_model(const char *name, const ckpt_model_config *model, pipe_federation *f)
{
    memset(f, 0, sizeof *f);
    XFFL_RETURN_IF(strlen(name) >= sizeof f->preset, XFFL_ERR_USAGE, "model name '%s' too long", name);
    XFFL_FORWARD(ckpt_model_validate(model));
    f->model = *model;
    strcpy(f->preset, name);
    f->n_facilities = 1;
    strcpy(f->facilities[0], "local");
    pipe_federation_set_algo(f, PIPE_ALGO_FEDAVG);
    f->local_steps = 100;
    f->quorum = 1;
    f->seed = 0;
    f->part_size = (uint64_t)1 << 30;
    f->zstd_level = CKPT_ZSTD_DEFAULT_LEVEL;
    f->inner = (pipe_inner_opt){.lr = 3e-4, .min_lr = 3e-5, .warmup = 10, .weight_decay = 0.1, .grad_clip = 1.0,
                                .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8};
    f->batch = 4;
    f->seq_len = f->model.max_seq_len < 256 ? f->model.max_seq_len : 256;
    f->encoding = CKPT_CODEC_FP32;
    f->encoding_decay = 1;
    f->keep_inner_state = 0;
    return XFFL_OK;
}

static int valid_facility(const char *n)
{
    if (!*n || strlen(n) >= PIPE_FACILITY_MAX) return 0;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')) return 0;
    return 1;
}

static int cmp_fac(const void *a, const void *b) { return strcmp(a, b); }

xffl_status pipe_federation_set_facilities(pipe_federation *f, const char *csv)
{
    char buf[PIPE_MAX_FACILITIES * PIPE_FACILITY_MAX];
    XFFL_RETURN_IF(strlen(csv) >= sizeof buf, XFFL_ERR_USAGE, "facility list too long");
    strcpy(buf, csv);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        XFFL_RETURN_IF(!valid_facility(tok), XFFL_ERR_USAGE,
                       "facility name '%s' (want 1-%d characters of a-z 0-9 _ -)", tok, PIPE_FACILITY_MAX - 1);
        XFFL_RETURN_IF(n == PIPE_MAX_FACILITIES, XFFL_ERR_USAGE, "more than %d facilities", PIPE_MAX_FACILITIES);
        strcpy(f->facilities[n++], tok);
    }
    XFFL_RETURN_IF(n == 0, XFFL_ERR_USAGE, "empty facility list '%s'", csv);
    qsort(f->facilities, (size_t)n, PIPE_FACILITY_MAX, cmp_fac);
    for (int i = 1; i < n; i++)
        XFFL_RETURN_IF(strcmp(f->facilities[i], f->facilities[i - 1]) == 0, XFFL_ERR_USAGE, "facility '%s' listed twice",
                       f->facilities[i]);
    f->n_facilities = n;
    return XFFL_OK;
}

int pipe_federation_facility_index(const pipe_federation *f, const char *name)
{
    for (int i = 0; i < f->n_facilities; i++)
        if (strcmp(f->facilities[i], name) == 0) return i;
    return -1;
}

xffl_status pipe_federation_validate(const pipe_federation *f)
{
    XFFL_FORWARD(ckpt_model_validate(&f->model));
    xffl_status s = pipe_algo_validate(&f->algo);
    if (s != XFFL_OK) return xffl_wrap(XFFL_ERR_INVALID, "federation");
    XFFL_RETURN_IF(f->n_facilities < 1 || f->n_facilities > PIPE_MAX_FACILITIES, XFFL_ERR_INVALID,
                   "federation: %d facilities", f->n_facilities);
    for (int i = 0; i < f->n_facilities; i++) {
        XFFL_RETURN_IF(!valid_facility(f->facilities[i]), XFFL_ERR_INVALID, "federation: facility name '%s'", f->facilities[i]);
        XFFL_RETURN_IF(i && strcmp(f->facilities[i - 1], f->facilities[i]) >= 0, XFFL_ERR_INVALID,
                       "federation: facilities not sorted/unique at '%s'", f->facilities[i]);
    }
    XFFL_RETURN_IF(f->quorum < 1 || f->quorum > f->n_facilities, XFFL_ERR_INVALID,
                   "federation: quorum %d outside 1..%d facilities", f->quorum, f->n_facilities);
    XFFL_RETURN_IF(f->local_steps < 1, XFFL_ERR_INVALID, "federation: local steps %d must be >= 1", f->local_steps);
    XFFL_RETURN_IF(f->n_step_phases < 0 || f->n_step_phases > PIPE_STEP_PHASES, XFFL_ERR_INVALID,
                   "federation: %d local-step schedule phases outside 0..%d", f->n_step_phases, PIPE_STEP_PHASES);
    for (int i = 0; i < f->n_step_phases; i++)
        XFFL_RETURN_IF(f->step_phases[i].steps < 1 || f->step_phases[i].steps > 100000000 ||
                           f->step_phases[i].rounds < 1 || f->step_phases[i].rounds > 100000000,
                       XFFL_ERR_INVALID, "federation: local-step schedule phase %d (%d steps x %d rounds) "
                       "outside 1..100000000", i + 1, f->step_phases[i].steps, f->step_phases[i].rounds);
    XFFL_RETURN_IF(f->part_size < ((uint64_t)1 << 20) || f->part_size > ((uint64_t)4 << 30), XFFL_ERR_INVALID,
                   "federation: part size %llu outside 1M..4G", (unsigned long long)f->part_size);
    XFFL_RETURN_IF(f->zstd_level < CKPT_ZSTD_MIN_LEVEL || f->zstd_level > CKPT_ZSTD_MAX_LEVEL || f->zstd_level == 0,
                   XFFL_ERR_INVALID, "federation: zstd level %d outside %d..%d (not 0)", f->zstd_level,
                   CKPT_ZSTD_MIN_LEVEL, CKPT_ZSTD_MAX_LEVEL);
    XFFL_RETURN_IF(f->seed > (uint64_t)INT64_MAX, XFFL_ERR_INVALID, "federation: seed too large");
    const pipe_inner_opt *o = &f->inner;
    XFFL_RETURN_IF(!(o->lr > 0), XFFL_ERR_INVALID, "federation: lr %g must be > 0", o->lr);
    XFFL_RETURN_IF(!(o->min_lr >= 0 && o->min_lr <= o->lr), XFFL_ERR_INVALID, "federation: min lr %g outside [0, lr]", o->min_lr);
    XFFL_RETURN_IF(o->warmup < 0, XFFL_ERR_INVALID, "federation: warmup %d must be >= 0", o->warmup);
    XFFL_RETURN_IF(o->total_rounds < 0, XFFL_ERR_INVALID, "federation: total_rounds %d must be >= 0", o->total_rounds);
    XFFL_RETURN_IF(!(o->weight_decay >= 0), XFFL_ERR_INVALID, "federation: weight decay %g must be >= 0", o->weight_decay);
    XFFL_RETURN_IF(!(o->grad_clip >= 0), XFFL_ERR_INVALID, "federation: grad clip %g must be >= 0", o->grad_clip);
    XFFL_RETURN_IF(!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1), XFFL_ERR_INVALID,
                   "federation: inner betas %g, %g outside [0,1)", o->beta1, o->beta2);
    XFFL_RETURN_IF(!(o->eps > 0), XFFL_ERR_INVALID, "federation: inner eps %g must be > 0", o->eps);
    XFFL_RETURN_IF(f->batch < 1, XFFL_ERR_INVALID, "federation: batch %d must be >= 1", f->batch);
    XFFL_RETURN_IF(f->seq_len < 1 || f->seq_len > f->model.max_seq_len, XFFL_ERR_INVALID,
                   "federation: seq len %d outside 1..%d (max_seq_len)", f->seq_len, f->model.max_seq_len);
    XFFL_RETURN_IF(!ckpt_codec_get(f->encoding), XFFL_ERR_INVALID, "federation: encoding %d", (int)f->encoding);
    ckpt_codec_params cp = ckpt_codec_default_params(f->encoding);
    cp.k = f->encoding_k;
    XFFL_RETURN_IF(!ckpt_codec_takes_k(f->encoding) && f->encoding_k, XFFL_ERR_INVALID,
                   "federation: encoding %s takes no k (%d)", ckpt_codec_name(f->encoding), f->encoding_k);
    cp.gaps = f->encoding_gaps;
    XFFL_RETURN_IF(f->encoding_flush && !ckpt_codec_takes_k(f->encoding), XFFL_ERR_INVALID,
                   "federation: encoding_flush %d needs an encoding with a k, not %s", f->encoding_flush,
                   ckpt_codec_name(f->encoding));
    XFFL_RETURN_IF(!(f->encoding_decay > 0 && f->encoding_decay <= 1), XFFL_ERR_INVALID,
                   "federation: encoding_decay %g outside (0, 1]", f->encoding_decay);
    XFFL_RETURN_IF(f->encoding_decay != 1 && !ckpt_codec_lossy(f->encoding), XFFL_ERR_INVALID,
                   "federation: encoding_decay %g needs a lossy encoding (one with a residual), not %s",
                   f->encoding_decay, ckpt_codec_name(f->encoding));
    XFFL_RETURN_IF(f->encoding_flush < 0 || f->encoding_flush > o->total_rounds, XFFL_ERR_INVALID,
                   "federation: encoding_flush %d outside 0..%d (total_rounds)", f->encoding_flush, o->total_rounds);
    xffl_status st = ckpt_codec_check_params(f->encoding, &cp);
    if (st != XFFL_OK) return xffl_wrap(st, "federation");
    XFFL_RETURN_IF(f->tokenizer_sha256[0] && (strlen(f->tokenizer_sha256) != XFFL_SHA256_HEX - 1 ||
                                              strspn(f->tokenizer_sha256, "0123456789abcdef") != XFFL_SHA256_HEX - 1),
                   XFFL_ERR_INVALID, "federation: tokenizer_sha256 '%s' is not a SHA-256", f->tokenizer_sha256);
    return XFFL_OK;
}

int pipe_federation_round_steps(const pipe_federation *f, int64_t round)
{
    int64_t first = 1; /* the phase's first round */
    for (int i = 0; i < f->n_step_phases; i++) {
        if (round < first + f->step_phases[i].rounds) return f->step_phases[i].steps;
        first += f->step_phases[i].rounds;
    }
    return f->local_steps;
}

int64_t pipe_federation_steps_before(const pipe_federation *f, int64_t round)
{
    int64_t steps = 0, left = round > 1 ? round - 1 : 0; /* rounds before `round` */
    for (int i = 0; i < f->n_step_phases && left > 0; i++) {
        int64_t r = left < f->step_phases[i].rounds ? left : f->step_phases[i].rounds;
        steps += r * f->step_phases[i].steps;
        left -= r;
    }
    return steps + left * f->local_steps;
}

xffl_status pipe_federation_parse_steps(const char *spec, pipe_federation *f)
{
    f->n_step_phases = 0;
    if (!spec[0] || !strcmp(spec, "none")) return XFFL_OK;
    const char *p = spec;
    for (;;) {
        char *end;
        long long st, r;
        int ok = *p >= '1' && *p <= '9';
        st = ok ? strtoll(p, &end, 10) : 0;
        ok = ok && *end == 'x' && end[1] >= '1' && end[1] <= '9';
        r = ok ? strtoll(end + 1, &end, 10) : 0;
        ok = ok && st <= 100000000 && r <= 100000000 && (*end == 0 || *end == ',');
        XFFL_RETURN_IF(!ok, XFFL_ERR_USAGE,
                       "local-step schedule '%s': expected STEPSxROUNDS[,STEPSxROUNDS...] (e.g. 10x10,25x4), "
                       "each 1..100000000", spec);
        XFFL_RETURN_IF(f->n_step_phases == PIPE_STEP_PHASES, XFFL_ERR_USAGE,
                       "local-step schedule '%s': more than %d phases", spec, PIPE_STEP_PHASES);
        f->step_phases[f->n_step_phases++] = (pipe_step_phase){(int)st, (int)r};
        if (!*end) return XFFL_OK;
        p = end + 1;
    }
}

void pipe_federation_format_steps(const pipe_federation *f, char out[PIPE_STEP_SCHEDULE_MAX])
{
    out[0] = 0;
    for (int i = 0; i < f->n_step_phases && i < PIPE_STEP_PHASES; i++) {
        size_t l = strlen(out);
        snprintf(out + l, PIPE_STEP_SCHEDULE_MAX - l, "%s%dx%d", i ? "," : "", f->step_phases[i].steps,
                 f->step_phases[i].rounds);
    }
}

xffl_status pipe_federation_round_tokens(const pipe_federation *f, int64_t round, int64_t *tokens)
{
    int64_t bt;
    int H = pipe_federation_round_steps(f, round);
    int over = __builtin_mul_overflow((int64_t)H, (int64_t)f->batch, &bt) ||
               __builtin_mul_overflow(bt, (int64_t)f->seq_len, tokens);
    XFFL_RETURN_IF(over || *tokens < 1, XFFL_ERR_INVALID, "federation: %d local steps x batch %d x seq len %d tokens "
                   "in round %lld is out of range", H, f->batch, f->seq_len, (long long)round);
    return XFFL_OK;
}

/* Attribute names below are the file format: h5dump -A shows them to people. */
xffl_status pipe_federation_write_file(const pipe_federation *f, const char *path)
{
    XFFL_FORWARD(pipe_federation_validate(f));
    ckpt_h5_writer *w;
    XFFL_FORWARD(ckpt_h5_writer_create(path, NULL, &w));
    char facs[PIPE_MAX_FACILITIES * PIPE_FACILITY_MAX] = "";
    for (int i = 0; i < f->n_facilities; i++) {
        if (i) strcat(facs, ",");
        strcat(facs, f->facilities[i]);
    }
    const pipe_algo_config *a = &f->algo;
    const pipe_inner_opt *o = &f->inner;
    xffl_status s = XFFL_OK;
#define W(expr) if (s == XFFL_OK) s = (expr)
    W(ckpt_h5_attr_str(w, "format", PIPE_FEDERATION_FORMAT));
    int signd = pipe_federation_signed(f), version = pipe_federation_newer_settings(f)
                                                         ? (signd ? PIPE_FEDERATION_FORMAT_VERSION
                                                                  : PIPE_FEDERATION_FORMAT_VERSION_SETTINGS)
                                                     : signd               ? PIPE_FEDERATION_FORMAT_VERSION_SIGNED
                                                     : f->tokenizer_sha256[0] ? PIPE_FEDERATION_FORMAT_VERSION_TOKENIZER
                                                                           : PIPE_FEDERATION_FORMAT_VERSION_BYTE_LEVEL;
    W(ckpt_h5_attr_int(w, "format_version", version));
    W(ckpt_h5_attr_str(w, "preset", f->preset));
    W(pipe_model_attrs_write(w, &f->model));
    W(ckpt_h5_attr_str(w, "facilities", facs));
    W(ckpt_h5_attr_str(w, "algorithm", pipe_algo_name(a->kind)));
    int np;
    const pipe_algo_param *ap = pipe_algo_params(&np);
    for (int i = 0; i < np; i++) {
        const char *field = (const char *)a + ap[i].offset;
        int unset = ap[i].type == PIPE_ALGO_PARAM_FLAG ? *(const int *)field == 0 : *(const double *)field == 0;
        if (ap[i].optional && unset) continue;
        if (ap[i].type == PIPE_ALGO_PARAM_FLAG) {
            W(ckpt_h5_attr_int(w, ap[i].attr, *(const int *)field));
        } else {
            W(ckpt_h5_attr_double(w, ap[i].attr, *(const double *)field));
        }
    }
    W(ckpt_h5_attr_int(w, "local_steps", f->local_steps));
    if (f->n_step_phases) { /* unset: older bytes */
        char sched[PIPE_STEP_SCHEDULE_MAX];
        pipe_federation_format_steps(f, sched);
        W(ckpt_h5_attr_str(w, "local_steps_schedule", sched));
    }
    W(ckpt_h5_attr_int(w, "quorum", f->quorum));
    W(ckpt_h5_attr_int(w, "seed", (int64_t)f->seed));
    W(ckpt_h5_attr_int(w, "part_size", (int64_t)f->part_size));
    W(ckpt_h5_attr_int(w, "zstd_level", f->zstd_level));
    W(ckpt_h5_attr_double(w, "lr", o->lr));
    W(ckpt_h5_attr_double(w, "min_lr", o->min_lr));
    W(ckpt_h5_attr_int(w, "warmup", o->warmup));
    W(ckpt_h5_attr_int(w, "total_rounds", o->total_rounds));
    W(ckpt_h5_attr_double(w, "weight_decay", o->weight_decay));
    W(ckpt_h5_attr_double(w, "grad_clip", o->grad_clip));
    W(ckpt_h5_attr_double(w, "beta1", o->beta1));
    W(ckpt_h5_attr_double(w, "beta2", o->beta2));
    W(ckpt_h5_attr_double(w, "eps", o->eps));
    W(ckpt_h5_attr_int(w, "batch", f->batch));
    W(ckpt_h5_attr_int(w, "seq_len", f->seq_len));
    W(ckpt_h5_attr_str(w, "encoding", ckpt_codec_name(f->encoding)));
    if (ckpt_codec_takes_k(f->encoding)) W(ckpt_h5_attr_int(w, "encoding_k", f->encoding_k));
    if (f->encoding_gaps) W(ckpt_h5_attr_int(w, "encoding_gaps", f->encoding_gaps));
    if (f->encoding_flush) W(ckpt_h5_attr_int(w, "encoding_flush", f->encoding_flush));
    if (f->encoding_decay != 1) W(ckpt_h5_attr_double(w, "encoding_decay", f->encoding_decay));
    W(ckpt_h5_attr_int(w, "keep_inner_state", f->keep_inner_state));
    if (f->data_strided) W(ckpt_h5_attr_int(w, "data_strided", 1)); /* unset: older bytes */
    if (f->tokenizer_sha256[0]) W(ckpt_h5_attr_str(w, "tokenizer_sha256", f->tokenizer_sha256));
    if (pipe_federation_signed(f)) {
        char keys[PIPE_MAX_FACILITIES * XFFL_SIGN_PUB_HEX] = "";
        for (int i = 0; i < f->n_facilities; i++) {
            if (i) strcat(keys, ",");
            strcat(keys, f->facility_keys[i]);
        }
        W(ckpt_h5_attr_str(w, "aggregator_key", f->aggregator_key));
        W(ckpt_h5_attr_str(w, "facility_keys", keys));
    }
#undef W
    if (s != XFFL_OK) {
        ckpt_h5_writer_abort(w);
        return s;
    }
    return ckpt_h5_writer_close(w);
}

static XFFL_MUST_USE xffl_status get_int(ckpt_h5_reader *r, const char *name, int64_t lo, int64_t hi, int64_t *v)
{
    XFFL_FORWARD(ckpt_h5_get_attr_int(r, name, v));
    XFFL_RETURN_IF(*v < lo || *v > hi, XFFL_ERR_INVALID, "%s: attribute %s = %lld out of range", ckpt_h5_reader_path(r),
                   name, (long long)*v);
    return XFFL_OK;
}

/* The table's parameters. An optional one a file lacks is 0 (off), not the algorithm's
 * default: it was written that way with the setting off, or before the setting existed
 * (a median federation from before delta_filter's default must not start filtering). */
static XFFL_MUST_USE xffl_status read_algo_params(ckpt_h5_reader *r, pipe_algo_config *a)
{
    int np;
    const pipe_algo_param *ap = pipe_algo_params(&np);
    for (int i = 0; i < np; i++) {
        char *field = (char *)a + ap[i].offset;
        if (ap[i].optional && !ckpt_h5_has_attr(r, ap[i].attr)) {
            if (ap[i].type == PIPE_ALGO_PARAM_FLAG)
                *(int *)field = 0;
            else
                *(double *)field = 0;
            continue;
        }
        if (ap[i].type == PIPE_ALGO_PARAM_FLAG) {
            int64_t v;
            XFFL_FORWARD(get_int(r, ap[i].attr, 0, 1, &v));
            *(int *)field = (int)v;
        } else
            XFFL_FORWARD(ckpt_h5_get_attr_double(r, ap[i].attr, (double *)field));
    }
    return XFFL_OK;
}

int pipe_federation_signed(const pipe_federation *f) { return f->aggregator_key[0] != 0; }

/* The settings added after version 3 that change a round's bits, each written only when
 * set: a new one goes here too, or older binaries train and aggregate without it. */
int pipe_federation_newer_settings(const pipe_federation *f)
{
    return f->encoding_gaps || f->encoding_flush || f->encoding_decay != 1 || f->data_strided ||
           f->algo.outer_warmup > 0 || f->n_step_phases > 0;
}

/* Versions 3 and 5 must carry both key attributes; 1, 2 and 4 are unsigned federations,
 * still read: what pins them is their digest (docs/design.md "Trust"). */
static XFFL_MUST_USE xffl_status read_keys(ckpt_h5_reader *r, pipe_federation *f)
{
    const char *path = ckpt_h5_reader_path(r);
    int64_t version = 0;
    XFFL_FORWARD(ckpt_h5_get_attr_int(r, "format_version", &version));
    if (version != PIPE_FEDERATION_FORMAT_VERSION_SIGNED && version != PIPE_FEDERATION_FORMAT_VERSION) return XFFL_OK;
    char *str = NULL;
    XFFL_FORWARD(ckpt_h5_get_attr_str(r, "aggregator_key", &str));
    int ok = xffl_public_valid(str);
    if (ok) strcpy(f->aggregator_key, str);
    free(str);
    XFFL_RETURN_IF(!ok, XFFL_ERR_INVALID, "%s: attribute aggregator_key is not an Ed25519 public key", path);
    XFFL_FORWARD(ckpt_h5_get_attr_str(r, "facility_keys", &str));
    const char *p = str;
    int n = 0;
    ok = 1;
    while (ok && n < f->n_facilities) {
        size_t len = strcspn(p, ",");
        ok = len == XFFL_SIGN_PUB_HEX - 1;
        if (ok) {
            memcpy(f->facility_keys[n], p, len);
            f->facility_keys[n][len] = 0;
            ok = xffl_public_valid(f->facility_keys[n]);
        }
        n++;
        p += len;
        if (ok && n < f->n_facilities) ok = *p++ == ',';
    }
    ok = ok && *p == 0;
    free(str);
    XFFL_RETURN_IF(!ok, XFFL_ERR_INVALID, "%s: attribute facility_keys is not one Ed25519 public key per facility", path);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status read_all(ckpt_h5_reader *r, pipe_federation *f)
{
    const char *path = ckpt_h5_reader_path(r);
    char *str = NULL;
    int64_t v;
    memset(f, 0, sizeof *f);
    XFFL_FORWARD(ckpt_h5_check_format(r, PIPE_FEDERATION_FORMAT, PIPE_FEDERATION_FORMAT_VERSION));
    XFFL_FORWARD(ckpt_h5_get_attr_str(r, "preset", &str));
    int ok = strlen(str) < sizeof f->preset;
    if (ok) strcpy(f->preset, str);
    free(str);
    XFFL_RETURN_IF(!ok, XFFL_ERR_INVALID, "%s: preset name too long", path);
    XFFL_FORWARD(pipe_model_attrs_read(r, &f->model));
    XFFL_FORWARD(ckpt_h5_get_attr_str(r, "facilities", &str));
    xffl_status s = pipe_federation_set_facilities(f, str);
    free(str);
    if (s != XFFL_OK) return xffl_wrap(XFFL_ERR_INVALID, "%s: attribute facilities", path);
    XFFL_FORWARD(ckpt_h5_get_attr_str(r, "algorithm", &str));
    pipe_algo_kind kind;
    s = pipe_algo_parse(str, &kind);
    free(str);
    if (s != XFFL_OK) return xffl_wrap(XFFL_ERR_INVALID, "%s: attribute algorithm", path);
    pipe_federation_set_algo(f, kind);
    pipe_inner_opt *o = &f->inner;
    XFFL_FORWARD(read_algo_params(r, &f->algo));
    XFFL_FORWARD(get_int(r, "local_steps", 1, INT32_MAX, &v));
    f->local_steps = (int)v;
    if (ckpt_h5_has_attr(r, "local_steps_schedule")) { /* absent (every federation before it): H every round */
        XFFL_FORWARD(ckpt_h5_get_attr_str(r, "local_steps_schedule", &str));
        char back[PIPE_STEP_SCHEDULE_MAX];
        s = str[0] ? pipe_federation_parse_steps(str, f) : XFFL_ERR_USAGE;
        if (s == XFFL_OK) pipe_federation_format_steps(f, back);
        ok = s == XFFL_OK && !strcmp(back, str); /* one spelling per schedule */
        free(str);
        XFFL_RETURN_IF(!ok, XFFL_ERR_INVALID, "%s: attribute local_steps_schedule is not STEPSxROUNDS[,...]", path);
    }
    XFFL_FORWARD(get_int(r, "quorum", 1, PIPE_MAX_FACILITIES, &v));
    f->quorum = (int)v;
    XFFL_FORWARD(get_int(r, "seed", 0, INT64_MAX, &v));
    f->seed = (uint64_t)v;
    XFFL_FORWARD(get_int(r, "part_size", 1, INT64_MAX, &v));
    f->part_size = (uint64_t)v;
    XFFL_FORWARD(get_int(r, "zstd_level", CKPT_ZSTD_MIN_LEVEL, CKPT_ZSTD_MAX_LEVEL, &v));
    f->zstd_level = (int)v;
    XFFL_FORWARD(ckpt_h5_get_attr_double(r, "lr", &o->lr));
    XFFL_FORWARD(ckpt_h5_get_attr_double(r, "min_lr", &o->min_lr));
    XFFL_FORWARD(get_int(r, "warmup", 0, INT32_MAX, &v));
    o->warmup = (int)v;
    /* absent in federations made before it existed: they restart every round */
    v = 0;
    if (ckpt_h5_has_attr(r, "total_rounds")) XFFL_FORWARD(get_int(r, "total_rounds", 0, INT32_MAX, &v));
    o->total_rounds = (int)v;
    XFFL_FORWARD(ckpt_h5_get_attr_double(r, "weight_decay", &o->weight_decay));
    XFFL_FORWARD(ckpt_h5_get_attr_double(r, "grad_clip", &o->grad_clip));
    XFFL_FORWARD(ckpt_h5_get_attr_double(r, "beta1", &o->beta1));
    XFFL_FORWARD(ckpt_h5_get_attr_double(r, "beta2", &o->beta2));
    XFFL_FORWARD(ckpt_h5_get_attr_double(r, "eps", &o->eps));
    XFFL_FORWARD(get_int(r, "batch", 1, INT32_MAX, &v));
    f->batch = (int)v;
    XFFL_FORWARD(get_int(r, "seq_len", 1, INT32_MAX, &v));
    f->seq_len = (int)v;
    XFFL_FORWARD(ckpt_h5_get_attr_str(r, "encoding", &str));
    s = ckpt_codec_parse(str, &f->encoding);
    free(str);
    if (s != XFFL_OK) return xffl_wrap(XFFL_ERR_INVALID, "%s: attribute encoding", path);
    f->encoding_k = 0;
    if (ckpt_codec_takes_k(f->encoding)) { /* older binaries know no such encoding: no format bump */
        XFFL_FORWARD(get_int(r, "encoding_k", 1, CKPT_CODEC_TOPK_BLOCK_MAX, &v));
        f->encoding_k = (int)v;
    }
    /* only when set: unset, the file has the bytes older xffl wrote */
    f->encoding_gaps = 0;
    if (ckpt_h5_has_attr(r, "encoding_gaps")) {
        XFFL_FORWARD(get_int(r, "encoding_gaps", 0, 1, &v));
        f->encoding_gaps = (int)v;
    }
    f->encoding_decay = 1;
    if (ckpt_h5_has_attr(r, "encoding_decay")) XFFL_FORWARD(ckpt_h5_get_attr_double(r, "encoding_decay", &f->encoding_decay));
    f->encoding_flush = 0;
    if (ckpt_h5_has_attr(r, "encoding_flush")) {
        XFFL_FORWARD(get_int(r, "encoding_flush", 0, INT32_MAX, &v));
        f->encoding_flush = (int)v;
    }
    XFFL_FORWARD(get_int(r, "keep_inner_state", 0, 1, &v));
    f->keep_inner_state = (int)v;
    f->data_strided = 0; /* absent (every federation before it): file order */
    if (ckpt_h5_has_attr(r, "data_strided")) {
        XFFL_FORWARD(get_int(r, "data_strided", 0, 1, &v));
        f->data_strided = (int)v;
    }
    if (ckpt_h5_has_attr(r, "tokenizer_sha256")) { /* absent: byte-level */
        XFFL_FORWARD(ckpt_h5_get_attr_str(r, "tokenizer_sha256", &str));
        ok = strlen(str) < sizeof f->tokenizer_sha256;
        if (ok) strcpy(f->tokenizer_sha256, str);
        free(str);
        XFFL_RETURN_IF(!ok, XFFL_ERR_INVALID, "%s: attribute tokenizer_sha256 is not a SHA-256", path);
    }
    XFFL_FORWARD(read_keys(r, f));
    s = pipe_federation_validate(f);
    if (s != XFFL_OK) return xffl_wrap(s, "%s", path);
    return XFFL_OK;
}

xffl_status pipe_federation_read_file(const char *path, pipe_federation *f)
{
    ckpt_h5_reader *r;
    XFFL_FORWARD(ckpt_h5_reader_open(path, NULL, &r));
    xffl_status s = read_all(r, f);
    ckpt_h5_reader_close(r);
    if (s == XFFL_ERR_NOT_FOUND) s = XFFL_ERR_INVALID; /* a missing attribute is a bad file, not a missing one */
    return s;
}

xffl_status pipe_federation_publish(store *s, const pipe_federation *f, char sha_hex[XFFL_SHA256_HEX])
{
    uint64_t size;
    xffl_status st = store_head(s, PIPE_FEDERATION_KEY, &size, NULL);
    if (st == XFFL_OK)
        return xffl_fail(XFFL_ERR_EXISTS, "%s already holds %s: this store is a federation already", store_url(s),
                         PIPE_FEDERATION_KEY);
    if (st != XFFL_ERR_NOT_FOUND) return st;
    char *dir;
    XFFL_FORWARD(xffl_mkdtemp("federation", &dir));
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, PIPE_FEDERATION_KEY);
    char hex[XFFL_SHA256_HEX];
    st = pipe_federation_write_file(f, path);
    if (st == XFFL_OK) st = xffl_sha256_file(path, hex, NULL);
    if (st == XFFL_OK) st = store_put_file(s, PIPE_FEDERATION_KEY, path);
    xffl_rmtree_cleanup(dir);
    free(dir);
    if (st == XFFL_OK && sha_hex) memcpy(sha_hex, hex, XFFL_SHA256_HEX);
    return st;
}

xffl_status pipe_federation_load(store *s, const char *expect_sha, pipe_federation *f, char sha_hex[XFFL_SHA256_HEX])
{
    char *dir;
    XFFL_FORWARD(xffl_mkdtemp("federation", &dir));
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, PIPE_FEDERATION_KEY);
    char hex[XFFL_SHA256_HEX];
    xffl_status st = expect_sha ? store_get_file_verified(s, PIPE_FEDERATION_KEY, expect_sha, path)
                                : store_get_file(s, PIPE_FEDERATION_KEY, path);
    if (st == XFFL_ERR_NOT_FOUND)
        xffl_fail(st, "%s has no %s (not a federation: run xffl init)", store_url(s), PIPE_FEDERATION_KEY);
    if (st == XFFL_OK) st = xffl_sha256_file(path, hex, NULL);
    if (st == XFFL_OK) {
        st = pipe_federation_read_file(path, f);
        if (st != XFFL_OK) {
            char msg[XFFL_ERRMSG_MAX];
            snprintf(msg, sizeof msg, "%s", xffl_errmsg());
            const char *tail = strstr(msg, PIPE_FEDERATION_KEY ":");
            xffl_fail(st, "%s/%s", store_url(s), tail ? tail : msg);
        }
    }
    xffl_rmtree_cleanup(dir);
    free(dir);
    if (st == XFFL_OK && sha_hex) memcpy(sha_hex, hex, XFFL_SHA256_HEX);
    return st;
}

xffl_status pipe_federation_load_for(store *s, const pipe_version_ref *ref, pipe_federation *f,
                                     char sha_hex[XFFL_SHA256_HEX])
{
    ckpt_manifest *m = NULL;
    XFFL_FORWARD(pipe_manifest_load(s, ref->index_key, ref->index_sha, &m, NULL));
    const char *want = ckpt_manifest_get(m, "federation");
    char sha[XFFL_SHA256_HEX] = "";
    int ok = want && strlen(want) == XFFL_SHA256_HEX - 1 && strspn(want, "0123456789abcdef") == XFFL_SHA256_HEX - 1;
    if (ok) memcpy(sha, want, XFFL_SHA256_HEX);
    ckpt_manifest_free(m);
    XFFL_RETURN_IF(!ok, XFFL_ERR_INVALID, "%s: no well-formed 'federation=' line (the digest of %s)", ref->index_key,
                   PIPE_FEDERATION_KEY);
    xffl_status st = pipe_federation_load(s, sha, f, sha_hex);
    if (st == XFFL_ERR_CORRUPT)
        return xffl_wrap(st, "%s is not the %s that %s records (federation=%.12s...): damaged or replaced, "
                             "nothing read from it", PIPE_FEDERATION_KEY, PIPE_FEDERATION_KEY, ref->index_key, sha);
    return st;
}

xffl_status pipe_federation_load_latest(store *s, pipe_version_ref *latest, pipe_federation *f,
                                        char sha_hex[XFFL_SHA256_HEX])
{
    pipe_version_ref ref;
    xffl_status st = pipe_latest_read(s, &ref);
    if (st == XFFL_ERR_NOT_FOUND) {
        /* no federation.h5 either: say that (the usual first mistake) */
        uint64_t size;
        if (store_head(s, PIPE_FEDERATION_KEY, &size, NULL) == XFFL_ERR_NOT_FOUND)
            return xffl_fail(st, "%s has no %s (not a federation: run xffl init)", store_url(s), PIPE_FEDERATION_KEY);
        return xffl_fail(st, "%s has no LATEST (no version yet: run xffl init)", store_url(s));
    }
    XFFL_FORWARD(st);
    XFFL_FORWARD(pipe_federation_load_for(s, &ref, f, sha_hex));
    if (latest) *latest = ref;
    return XFFL_OK;
}

int pipe_federation_round_k(const pipe_federation *f, int64_t round)
{
    if (!ckpt_codec_takes_k(f->encoding)) return 0;
    if (f->encoding_flush > 0 && round > (int64_t)f->inner.total_rounds - f->encoding_flush)
        return ckpt_codec_default_params(f->encoding).block;
    return f->encoding_k;
}

void pipe_federation_delta_codec(const pipe_federation *f, int64_t round, ckpt_delta_meta *m)
{
    m->codec = f->encoding;
    m->block = CKPT_CODEC_BLOCK_DEFAULT;
    m->k = pipe_federation_round_k(f, round);
    m->gaps = f->encoding_gaps;
    m->decay = f->encoding_decay;
}
