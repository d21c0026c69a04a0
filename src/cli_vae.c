/* The VAE commands: info, train, eval, recon, sample, encode. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "genlab/blas.h"
#include "genlab/checkpoint.h"
#include "genlab/cli.h"
#include "genlab/fileio.h"
#include "genlab/image.h"
#include "genlab/paths.h"
#include "genlab/progress.h"
#include "genlab/render.h"
#include "genlab/train.h"
#include "genlab_config.h"


/* Options most commands share. */
typedef struct {
    const char *ckpt;
    const char *data;
    const char *out;
    int threads;
    int json;
    EvalSplit split;
} CommonOpts;

enum { OPT_CKPT = 1000, OPT_DATA, OPT_OUT, OPT_THREADS, OPT_JSON, OPT_SPLIT, OPT_N, OPT_SEED,
       OPT_ARCH, OPT_LATENT, OPT_BETA, OPT_WARMUP, OPT_EPOCHS, OPT_BATCH, OPT_LR, OPT_STEPS,
       OPT_RESUME, OPT_WEIGHTS_ONLY, OPT_TRAIN_IMAGES, OPT_TEMPERATURE, OPT_COLS, OPT_LIMIT };

/* Handles an option shared by several commands; returns 1 if it was one,
 * 0 if not, -1 on a bad value. */
static int common_opt(const char *cmd, int c, CommonOpts *o)
{
    switch (c) {
    case OPT_CKPT: o->ckpt = optarg; return 1;
    case OPT_DATA: o->data = optarg; return 1;
    case OPT_OUT: o->out = optarg; return 1;
    case OPT_JSON: o->json = 1; return 1;
    case OPT_THREADS: return cli_int(cmd, "threads", optarg, 1, 256, &o->threads) ? -1 : 1;
    case OPT_SPLIT:
        if (strcmp(optarg, "study") == 0) o->split = SPLIT_STUDY;
        else if (strcmp(optarg, "official") == 0) o->split = SPLIT_OFFICIAL;
        else return cli_usage_error(cmd, "--split: expected study or official, got \"%s\"", optarg), -1;
        return 1;
    default: return 0;
    }
}

#define COMMON_LONGOPTS                                                                        \
    {"ckpt", required_argument, NULL, OPT_CKPT}, {"data", required_argument, NULL, OPT_DATA},  \
    {"out", required_argument, NULL, OPT_OUT}, {"threads", required_argument, NULL, OPT_THREADS}, \
    {"json", no_argument, NULL, OPT_JSON}, {"split", required_argument, NULL, OPT_SPLIT},      \
    {"help", no_argument, NULL, 'h'}

/* Resolves --ckpt (or the shipped default) and loads the model. */
static int load_model(const char *cmd, const CommonOpts *o, Vae *m, Checkpoint *ck, char *path,
                      size_t cap)
{
    Err e;
    if (o->ckpt) snprintf(path, cap, "%s", o->ckpt);
    else if (paths_default_vae(path, cap, &e)) return cli_fail(cmd, &e);
    if (vae_load_checkpoint(path, m, ck, &e)) return cli_fail(cmd, &e);
    return 0;
}

static float ckpt_beta(const Checkpoint *ck)
{
    const char *b = ckpt_meta_get(ck, "beta");
    return b ? strtof(b, NULL) : 1.0f;
}

static const char *split_name(EvalSplit s) { return s == SPLIT_STUDY ? "study" : "official"; }

/* ==================================================================== info */

static const char info_help[] =
    "usage: genlab info [--arch conv|dense --latent D] [--ckpt FILE] [--json]\n"
    "\n"
    "With --arch: the model's layer table (output shapes, parameters, forward\n"
    "FLOPs per image). With --ckpt: a checkpoint's configuration, training\n"
    "state, metrics and tensors. With neither: version, data and checkpoint\n"
    "directories, and the BLAS kernel and threads in use.\n"
    "\n"
    "  --arch A       conv or dense\n"
    "  --latent D     latent size (default 2)\n"
    "  --ckpt FILE    a .safetensors.zst checkpoint\n"
    "  --json         machine-readable output\n";

static int info_model(VaeConfig cfg, int json)
{
    LayerInfo rows[8];
    int n = vae_layers(cfg, rows, 8);
    size_t params = 0;
    double flops = 0;
    for (int i = 0; i < n; i++) params += rows[i].params, flops += rows[i].flops;
    if (json) {
        json_t *layers = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(layers, json_pack("{s:s,s:s,s:[i,i,i],s:I,s:f}", "name", rows[i].name,
                                                    "kind", rows[i].kind, "output", rows[i].out_c,
                                                    rows[i].out_h, rows[i].out_w, "params",
                                                    (json_int_t)rows[i].params, "flops", rows[i].flops));
        cli_print_json(json_pack("{s:s,s:i,s:I,s:f,s:o}", "arch", vae_arch_name(cfg.arch), "latent",
                             cfg.latent, "params", (json_int_t)params, "flops_per_image", flops,
                             "layers", layers));
        return 0;
    }
    printf("%s VAE, latent d = %d\n\n", vae_arch_name(cfg.arch), cfg.latent);
    printf("%-15s %-36s %-12s %10s %12s\n", "layer", "kind", "output", "params", "MFLOP/img");
    for (int i = 0; i < n; i++) {
        char shape[32];
        if (rows[i].out_h == 1 && rows[i].out_w == 1) snprintf(shape, sizeof shape, "%d", rows[i].out_c);
        else snprintf(shape, sizeof shape, "%d×%d×%d", rows[i].out_c, rows[i].out_h, rows[i].out_w);
        /* printf pads by bytes; pad the UTF-8 columns by hand. */
        printf("%-15s %s%*s %s%*s %10zu %12.3f\n", rows[i].name, rows[i].kind,
               36 - utf8_columns(rows[i].kind), "", shape, 12 - utf8_columns(shape), "",
               rows[i].params, rows[i].flops / 1e6);
    }
    printf("\n%-65s %10zu %12.3f\n", "total (forward; training ≈ 3×)", params, flops / 1e6);
    return 0;
}

static int info_checkpoint(const char *cmd, const char *path, int json)
{
    Checkpoint ck;
    Err e;
    if (ckpt_read(path, &ck, &e)) return cli_fail(cmd, &e);
    size_t total = 0;
    for (int i = 0; i < ck.ntensors; i++) total += ck.tensors[i].nbytes;
    if (json) {
        json_t *meta = json_object(), *tensors = json_array();
        for (int i = 0; i < ck.nmeta; i++) json_object_set_new(meta, ck.meta[i].key, json_string(ck.meta[i].value));
        for (int i = 0; i < ck.ntensors; i++) {
            json_t *shape = json_array();
            for (int d = 0; d < ck.tensors[i].ndim; d++) json_array_append_new(shape, json_integer(ck.tensors[i].shape[d]));
            json_array_append_new(tensors, json_pack("{s:s,s:o}", "name", ck.tensors[i].name, "shape", shape));
        }
        cli_print_json(json_pack("{s:s,s:o,s:o,s:I}", "file", path, "metadata", meta, "tensors", tensors,
                             "tensor_bytes", (json_int_t)total));
    } else {
        printf("%s\n\n", path);
        for (int i = 0; i < ck.nmeta; i++) printf("  %-20s %s\n", ck.meta[i].key, ck.meta[i].value);
        printf("\n  %d tensors, %zu bytes:\n", ck.ntensors, total);
        for (int i = 0; i < ck.ntensors; i++) {
            printf("    %-28s [", ck.tensors[i].name);
            for (int d = 0; d < ck.tensors[i].ndim; d++) printf("%s%" PRId64, d ? "," : "", ck.tensors[i].shape[d]);
            printf("]\n");
        }
    }
    ckpt_free(&ck);
    return 0;
}

static int info_system(int json)
{
    char assets[4096], ckdir[4096];
    Err e1, e2;
    int have_assets = paths_assets_dir(assets, sizeof assets, &e1) == 0;
    int have_ckpts = paths_checkpoints_dir(ckdir, sizeof ckdir, &e2) == 0;
    if (json) {
        cli_print_json(json_pack("{s:s,s:s,s:s,s:b,s:i}", "version", GENLAB_VERSION, "assets",
                             have_assets ? assets : "", "checkpoints", have_ckpts ? ckdir : "",
                             "blas_core", blas_core_name(), "blas_core_forced",
                             blas_kernel_was_forced(), "threads", blas_get_threads()));
        return 0;
    }
    printf("genlab %s\n", GENLAB_VERSION);
    printf("  data         %s\n", have_assets ? assets : e1.msg);
    printf("  checkpoints  %s\n", have_ckpts ? ckdir : e2.msg);
    printf("  BLAS kernel  %s%s\n", blas_core_name(),
           blas_kernel_was_forced() ? " (chosen by genlab: OPENBLAS_CORETYPE)" : "");
    printf("  threads      %d\n", blas_get_threads());
    return 0;
}

int cmd_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"arch", required_argument, NULL, OPT_ARCH}, {"latent", required_argument, NULL, OPT_LATENT},
        COMMON_LONGOPTS, {0, 0, 0, 0}};
    CommonOpts o = {0};
    VaeConfig cfg = {ARCH_CONV, 2};
    int have_arch = 0, c;
    FOR_EACH_OPT(c, argc, argv, longopts) {
        int r = common_opt("info", c, &o);
        if (r < 0) return 2;
        if (r) continue;
        switch (c) {
        case 'h': fputs(info_help, stdout); return 0;
        case OPT_ARCH:
            if (vae_arch_parse(optarg, &cfg.arch)) return cli_usage_error("info", "--arch: expected conv or dense, got \"%s\"", optarg);
            have_arch = 1;
            break;
        case OPT_LATENT:
            if (cli_int("info", "latent", optarg, 1, VAE_MAX_LATENT, &cfg.latent)) return 2;
            have_arch = 1;
            break;
        default: return cli_usage_error("info", "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error("info", "unexpected argument \"%s\"", argv[optind]);
    if (o.ckpt) return info_checkpoint("info", o.ckpt, o.json);
    if (have_arch) return info_model(cfg, o.json);
    return info_system(o.json);
}

/* =================================================================== train */

static const char train_help[] =
    "usage: genlab train [options]\n"
    "\n"
    "Trains a β-VAE on the study's 48,000 training images and evaluates it on\n"
    "the 12,000 held out (the study split) after every epoch. Defaults are the\n"
    "study's recipe. The run is saved after every epoch and on Ctrl-C, with\n"
    "Adam's state, so --resume continues it exactly.\n"
    "\n"
    "  --arch A           conv or dense (default conv)\n"
    "  --latent D         latent size (default 2)\n"
    "  --beta B           weight of the KL term (default 1)\n"
    "  --beta-warmup K    raise β linearly from 0 over the first K epochs (default 0: off)\n"
    "  --epochs N         (default 20)\n"
    "  --batch N          (default 64)\n"
    "  --lr X             Adam learning rate (default 0.001)\n"
    "  --seed S           weights, data order and noise (default 0)\n"
    "  --steps N          stop after N optimizer steps in total\n"
    "  --train-images N   train on the first N study-train images only (quick runs)\n"
    "  --out FILE         checkpoint to write (default vae-ARCH-dD-bBETA.safetensors.zst)\n"
    "  --weights-only     write only the weights (small; cannot be resumed)\n"
    "  --resume FILE      continue the run saved in FILE (--epochs may raise its total)\n"
    "  --threads N        worker threads, each on a shard of the batch (default: all\n"
    "                     cores; a run resumes bit-exactly with its own count)\n"
    "  --data DIR         other MNIST-shaped IDX files (e.g. Fashion-MNIST)\n"
    "  --json             print the final metrics as one JSON line on stdout\n";

typedef struct {
    Trainer *t;
    const char *out;
    int with_state;
    int tty;
    int json;
    double last_draw, smooth_loss, start;
    Err save_err;
    int save_failed;
} TrainView;

static int batches_of(const Trainer *t) { return (t->ntrain + t->cfg.batch - 1) / t->cfg.batch; }

static void draw_progress(TrainView *v)
{
    const Trainer *t = v->t;
    double ips = t->train_seconds > 0 ? (double)t->images_seen / t->train_seconds : 0;
    int64_t left = (int64_t)(t->cfg.epochs - t->epoch) * t->ntrain - (int64_t)t->batch_in_epoch * t->cfg.batch;
    ProgressInfo p = {t->epoch + 1, t->cfg.epochs, t->batch_in_epoch, batches_of(t), v->smooth_loss,
                      ips, ips > 0 ? (double)left / ips : -1};
    char line[512];
    struct winsize ws;
    int width = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col - 1 : 79;
    progress_format(line, sizeof line, &p, width, 1);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
}

static void on_batch(void *ctx, const Trainer *t, double bce, double kld)
{
    TrainView *v = ctx;
    double loss = bce + train_beta_at(&t->cfg, t->epoch) * kld;
    v->smooth_loss = v->smooth_loss == 0 ? loss : 0.98 * v->smooth_loss + 0.02 * loss;
    double now = monotonic_seconds();
    if (v->tty && now - v->last_draw > 0.1) {
        v->last_draw = now;
        draw_progress(v);
    }
}

static void on_epoch(void *ctx, const Trainer *t, const EpochStats *s)
{
    TrainView *v = ctx;
    if (v->tty) fprintf(stderr, "\r\033[K");
    FILE *f = v->json ? stderr : stdout;
    fprintf(f, "epoch %2d/%d  train BCE %8.3f KLD %7.3f  test BCE %8.3f KLD %7.3f  %6.1f s  %6.0f img/s\n",
            s->epoch, t->cfg.epochs, s->train_bce, s->train_kld, s->test_bce, s->test_kld, s->seconds,
            s->seconds > 0 ? t->ntrain / s->seconds : 0);
    fflush(f);
    /* Save every epoch so that a crash loses at most one. */
    if (trainer_save(v->t, v->out, 1, &v->save_err)) v->save_failed = 1;
}

static void default_out_name(char *out, size_t cap, const TrainConfig *c)
{
    snprintf(out, cap, "vae-%s-d%d-b%g.safetensors.zst", vae_arch_name(c->model.arch), c->model.latent, c->beta);
}

static void print_train_result(const Trainer *t, const char *out, const EvalResult *study)
{
    json_t *o = json_pack("{s:s,s:s,s:i,s:f,s:i,s:I,s:f,s:f,s:{s:f,s:f,s:f,s:f,s:i}}", "out", out,
                          "arch", vae_arch_name(t->cfg.model.arch), "latent", t->cfg.model.latent,
                          "beta", (double)t->cfg.beta, "epoch", t->epoch, "step", (json_int_t)t->step,
                          "train_seconds", t->train_seconds, "images_per_second",
                          t->train_seconds > 0 ? t->images_seen / t->train_seconds : 0.0, "study",
                          "bce", study->bce, "bce_mu", study->bce_mu, "kld", study->kld, "loss",
                          study->bce + t->cfg.beta * study->kld, "n", study->n);
    cli_print_json(o);
}

typedef struct {
    TrainConfig cfg;
    CommonOpts o;
    const char *resume;
    int weights_only;
    int epochs_set;
} TrainArgs;

static int parse_train_args(int argc, char **argv, TrainArgs *a)
{
    static const struct option longopts[] = {
        {"arch", required_argument, NULL, OPT_ARCH}, {"latent", required_argument, NULL, OPT_LATENT},
        {"beta", required_argument, NULL, OPT_BETA}, {"beta-warmup", required_argument, NULL, OPT_WARMUP},
        {"epochs", required_argument, NULL, OPT_EPOCHS}, {"batch", required_argument, NULL, OPT_BATCH},
        {"lr", required_argument, NULL, OPT_LR}, {"seed", required_argument, NULL, OPT_SEED},
        {"steps", required_argument, NULL, OPT_STEPS}, {"resume", required_argument, NULL, OPT_RESUME},
        {"weights-only", no_argument, NULL, OPT_WEIGHTS_ONLY},
        {"train-images", required_argument, NULL, OPT_TRAIN_IMAGES}, COMMON_LONGOPTS, {0, 0, 0, 0}};
    const char *cmd = "train";
    TrainConfig *c = &a->cfg;
    int ch;
    FOR_EACH_OPT(ch, argc, argv, longopts) {
        int r = common_opt(cmd, ch, &a->o), bad = 0;
        if (r < 0) return 2;
        if (r) continue;
        switch (ch) {
        case 'h': fputs(train_help, stdout); return -1;
        case OPT_ARCH:
            if (vae_arch_parse(optarg, &c->model.arch)) return cli_usage_error(cmd, "--arch: expected conv or dense, got \"%s\"", optarg);
            break;
        case OPT_LATENT: bad = cli_int(cmd, "latent", optarg, 1, VAE_MAX_LATENT, &c->model.latent); break;
        case OPT_BETA: bad = cli_float(cmd, "beta", optarg, 0, 1e6, &c->beta); break;
        case OPT_WARMUP: bad = cli_int(cmd, "beta-warmup", optarg, 0, 100000, &c->beta_warmup_epochs); break;
        case OPT_EPOCHS: bad = cli_int(cmd, "epochs", optarg, 1, 100000, &c->epochs), a->epochs_set = 1; break;
        case OPT_BATCH: bad = cli_int(cmd, "batch", optarg, 1, 4096, &c->batch); break;
        case OPT_LR: bad = cli_float(cmd, "lr", optarg, 1e-12, 10, &c->lr); break;
        case OPT_SEED: bad = cli_u64(cmd, "seed", optarg, &c->seed); break;
        case OPT_STEPS: bad = cli_i64(cmd, "steps", optarg, 1, INT64_MAX, &c->max_steps); break;
        case OPT_RESUME: a->resume = optarg; break;
        case OPT_WEIGHTS_ONLY: a->weights_only = 1; break;
        case OPT_TRAIN_IMAGES: bad = cli_int(cmd, "train-images", optarg, 1, STUDY_TRAIN_N, &c->train_limit); break;
        default: return cli_usage_error(cmd, "unknown option");
        }
        if (bad) return 2;
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
    return 0;
}

/* Trains, then saves; reports an interruption as 130. */
static int run_training(Trainer *t, TrainView *v, int weights_only)
{
    TrainHooks hooks = {.ctx = v, .on_batch = on_batch, .on_epoch = on_epoch, .stop = cli_catch_interrupt()};
    Err e;
    int rc = trainer_run(t, &hooks, &e);
    cli_release_interrupt();
    if (v->tty) fprintf(stderr, "\r\033[K");
    if (rc) return cli_fail("train", &e);
    if (v->save_failed) return cli_fail("train", &v->save_err);
    int interrupted = atomic_load(hooks.stop);
    if (trainer_save(t, v->out, interrupted || !weights_only, &e)) return cli_fail("train", &e);
    if (interrupted) {
        fprintf(stderr, "genlab train: interrupted at epoch %d, step %" PRId64 "; saved %s (continue with --resume %s)\n",
                t->epoch + 1, t->step, v->out, v->out);
        return 130;
    }
    if (v->json) print_train_result(t, v->out, &t->last_test);
    else fprintf(stderr, "saved %s\n", v->out);
    return 0;
}

int cmd_train(int argc, char **argv)
{
    TrainArgs a = {.cfg = train_config_default()};
    int rc = parse_train_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    a.cfg.threads = a.o.threads;
    StudyData *data = malloc(sizeof *data);
    Err e;
    if (!data) return err_set(&e, "out of memory"), cli_fail("train", &e);
    if (study_data_load(data, a.o.data, &e)) {
        free(data);
        return cli_fail("train", &e);
    }
    Trainer t;
    char out[4096];
    if (a.resume)
        rc = trainer_resume(&t, a.resume, data, a.epochs_set ? a.cfg.epochs : 0, a.cfg.max_steps,
                            a.cfg.threads, &e);
    else rc = trainer_init(&t, &a.cfg, data, &e);
    if (rc) {
        study_data_free(data);
        free(data);
        return cli_fail("train", &e);
    }
    if (a.o.out) snprintf(out, sizeof out, "%s", a.o.out);
    else if (a.resume) snprintf(out, sizeof out, "%s", a.resume);
    else default_out_name(out, sizeof out, &t.cfg);
    TrainView v = {.t = &t, .out = out, .tty = isatty(2), .json = a.o.json, .start = monotonic_seconds()};
    if (!a.o.json || v.tty)
        fprintf(stderr, "%s %s VAE d=%d β=%g · %zu params · %d epochs × %d images · batch %d · %d threads · BLAS %s\n",
                a.resume ? "resuming" : "training", vae_arch_name(t.cfg.model.arch), t.cfg.model.latent,
                t.cfg.beta, t.model.nparams, t.cfg.epochs, t.ntrain, t.cfg.batch, t.cfg.threads,
                blas_core_name());
    rc = run_training(&t, &v, a.weights_only);
    trainer_free(&t);
    study_data_free(data);
    free(data);
    return rc;
}

/* ==================================================================== eval */

static const char eval_help[] =
    "usage: genlab eval [--ckpt FILE] [--split study|official] [--json]\n"
    "\n"
    "Per-image test losses of a VAE checkpoint: BCE with z sampled (fixed\n"
    "evaluation seed, so figures repeat), BCE with z = μ, KLD, and the\n"
    "objective BCE + β·KLD with the checkpoint's β.\n"
    "\n"
    "  --ckpt FILE      default: the shipped conv VAE (d=2, β=1)\n"
    "  --split S        study: the 12,000 held-out training images (default);\n"
    "                   official: the 10,000 official test images\n"
    "  --limit N        evaluate the first N images only\n"
    "  --threads N      BLAS threads\n"
    "  --data DIR       other MNIST-shaped IDX files\n"
    "  --json           one JSON line: bce, bce_mu, kld, loss, n, split, beta, ckpt\n";

/* Parses the options of eval/recon/sample/encode: the common ones plus
 * --n, --seed, --temperature, --cols and --limit where the command takes them. */
typedef struct {
    CommonOpts o;
    int n, cols, limit;
    uint64_t seed;
    float temperature;
} ModelArgs;

static int parse_model_args(const char *cmd, const char *help, int argc, char **argv, ModelArgs *a)
{
    static const struct option longopts[] = {
        {"n", required_argument, NULL, OPT_N}, {"seed", required_argument, NULL, OPT_SEED},
        {"temperature", required_argument, NULL, OPT_TEMPERATURE},
        {"cols", required_argument, NULL, OPT_COLS}, {"limit", required_argument, NULL, OPT_LIMIT},
        COMMON_LONGOPTS, {0, 0, 0, 0}};
    int ch;
    FOR_EACH_OPT(ch, argc, argv, longopts) {
        int r = common_opt(cmd, ch, &a->o), bad = 0;
        if (r < 0) return 2;
        if (r) continue;
        switch (ch) {
        case 'h': fputs(help, stdout); return -1;
        case OPT_N: bad = cli_int(cmd, "n", optarg, 1, 100000, &a->n); break;
        case OPT_SEED: bad = cli_u64(cmd, "seed", optarg, &a->seed); break;
        case OPT_TEMPERATURE: bad = cli_float(cmd, "temperature", optarg, 0, 100, &a->temperature); break;
        case OPT_COLS: bad = cli_int(cmd, "cols", optarg, 1, 1000, &a->cols); break;
        case OPT_LIMIT: bad = cli_int(cmd, "limit", optarg, 1, 1000000, &a->limit); break;
        default: return cli_usage_error(cmd, "unknown option");
        }
        if (bad) return 2;
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
    cli_set_threads(a->o.threads);
    return 0;
}

/* Model plus data, for the commands that need both. */
typedef struct {
    Vae m;
    Checkpoint ck;
    StudyData *data;
    char path[4096];
} Session;

static int open_session(const char *cmd, const ModelArgs *a, Session *s, int need_data)
{
    memset(s, 0, sizeof *s);
    if (load_model(cmd, &a->o, &s->m, &s->ck, s->path, sizeof s->path)) return 1;
    if (!need_data) return 0;
    Err e;
    s->data = malloc(sizeof *s->data);
    if (!s->data || study_data_load(s->data, a->o.data, &e)) {
        if (!s->data) err_set(&e, "out of memory");
        free(s->data);
        s->data = NULL;
        vae_free(&s->m);
        ckpt_free(&s->ck);
        return cli_fail(cmd, &e);
    }
    return 0;
}

static void close_session(Session *s)
{
    if (s->data) study_data_free(s->data);
    free(s->data);
    vae_free(&s->m);
    ckpt_free(&s->ck);
}

int cmd_eval(int argc, char **argv)
{
    ModelArgs a = {0};
    int rc = parse_model_args("eval", eval_help, argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    Session s;
    if (open_session("eval", &a, &s, 1)) return 1;
    EvalResult r;
    Err e;
    rc = 0;
    if (vae_evaluate(&s.m, s.data, a.o.split, a.limit, &r, &e)) rc = cli_fail("eval", &e);
    else {
        float beta = ckpt_beta(&s.ck);
        double loss = r.bce + beta * r.kld;
        if (a.o.json)
            cli_print_json(json_pack("{s:s,s:s,s:i,s:f,s:f,s:f,s:f,s:f}", "ckpt", s.path, "split",
                                 split_name(a.o.split), "n", r.n, "bce", r.bce, "bce_mu", r.bce_mu,
                                 "kld", r.kld, "loss", loss, "beta", (double)beta));
        else
            printf("%s\n%s split, %d images, per image:\n  BCE %.3f (z = μ: %.3f)   KLD %.3f   BCE + %g·KLD = %.3f\n",
                   s.path, split_name(a.o.split), r.n, r.bce, r.bce_mu, r.kld, beta, loss);
    }
    close_session(&s);
    return rc;
}

/* =================================================================== recon */

static const char recon_help[] =
    "usage: genlab recon [--ckpt FILE] [--n N] [--out FILE] [--split study|official]\n"
    "\n"
    "Writes the first N test images (originals) above their reconstructions\n"
    "(decoded from z = μ) as one grid.\n"
    "\n"
    "  --ckpt FILE   default: the shipped conv VAE (d=2, β=1)\n"
    "  --n N         number of test digits (default 64)\n"
    "  --cols C      digits per row (default √N)\n"
    "  --out FILE    .png, .pgm or .idx (default recon.png); .idx holds the N\n"
    "                originals followed by the N reconstructions\n"
    "  --split S     study (default) or official test images\n";

static int default_cols(int n) { return (int)ceil(sqrt((double)n)); }

/* The indices of the first n images of a split, and the file they index. */
static const Dataset *split_images(const StudyData *d, EvalSplit split, int n, int32_t *idx)
{
    for (int i = 0; i < n; i++) idx[i] = split_index(d, split, i);
    return split_file(d, split);
}

int cmd_recon(int argc, char **argv)
{
    ModelArgs a = {.n = 64};
    int rc = parse_model_args("recon", recon_help, argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    const char *out = a.o.out ? a.o.out : "recon.png";
    Err e;
    if (cli_check_image_name("recon", out)) return 2;
    int max = a.o.split == SPLIT_STUDY ? STUDY_TEST_N : MNIST_TEST_N;
    if (a.n > max) return cli_usage_error("recon", "--n: the %s split has %d images", split_name(a.o.split), max);
    Session s;
    if (open_session("recon", &a, &s, 1)) return 1;
    int cols = a.cols ? a.cols : default_cols(a.n);
    int rows = (a.n + cols - 1) / cols, cells = rows * cols;
    /* originals in the first `cells` slots, reconstructions in the next */
    float *grid = calloc((size_t)2 * cells * MNIST_PIXELS, sizeof *grid);
    int32_t *idx = malloc((size_t)a.n * sizeof *idx);
    if (!grid || !idx || vae_reserve(&s.m, a.n, &e)) {
        rc = cli_fail("recon", (err_set(&e, "out of memory"), &e));
    } else {
        const Dataset *file = split_images(s.data, a.o.split, a.n, idx);
        dataset_gather(file, idx, a.n, grid);
        vae_encode(&s.m, grid, a.n);
        vae_decode(&s.m, s.m.a.mu, a.n, grid + (size_t)cells * MNIST_PIXELS);
        if (image_format_from_name(out) == IMG_IDX) {
            memmove(grid + (size_t)a.n * MNIST_PIXELS, grid + (size_t)cells * MNIST_PIXELS,
                    (size_t)a.n * MNIST_PIXELS * sizeof *grid);
            rc = cli_write_grid("recon", out, grid, 2 * a.n, cols);
        } else {
            rc = cli_write_grid("recon", out, grid, 2 * cells, cols);
        }
    }
    free(grid);
    free(idx);
    close_session(&s);
    return rc;
}

/* ================================================================== sample */

static const char sample_help[] =
    "usage: genlab sample [--ckpt FILE] [--n N] [--seed S] [--temperature T] [--out FILE]\n"
    "\n"
    "Decodes N latent vectors drawn from the prior N(0, T²·I) and writes them\n"
    "as a grid. The same seed gives the same digits.\n"
    "\n"
    "  --ckpt FILE       default: the shipped conv VAE (d=2, β=1)\n"
    "  --n N             number of digits (default 64)\n"
    "  --seed S          (default 0)\n"
    "  --temperature T   scale of the prior draws (default 1)\n"
    "  --cols C          digits per row (default √N)\n"
    "  --out FILE        .png, .pgm or .idx (default samples.png)\n";

int cmd_sample(int argc, char **argv)
{
    ModelArgs a = {.n = 64, .temperature = 1.0f};
    int rc = parse_model_args("sample", sample_help, argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    const char *out = a.o.out ? a.o.out : "samples.png";
    if (cli_check_image_name("sample", out)) return 2;
    Session s;
    if (open_session("sample", &a, &s, 0)) return 1;
    Err e;
    float *img = malloc((size_t)a.n * MNIST_PIXELS * sizeof *img);
    if (!img) rc = cli_fail("sample", (err_set(&e, "out of memory"), &e));
    else if (vae_sample_prior(&s.m, a.seed, a.temperature, a.n, img, &e)) rc = cli_fail("sample", &e);
    else rc = cli_write_grid("sample", out, img, a.n, a.cols ? a.cols : default_cols(a.n));
    free(img);
    close_session(&s);
    return rc;
}

/* ================================================================== encode */

static const char encode_help[] =
    "usage: genlab encode [--ckpt FILE] [--out FILE] [--split study|official]\n"
    "\n"
    "Writes μ and log σ² of every test image, one row per image, as\n"
    "tab-separated values with a header: index (into the IDX file), label,\n"
    "mu_0 … mu_{d−1}, logvar_0 … logvar_{d−1}.\n"
    "\n"
    "  --ckpt FILE   default: the shipped conv VAE (d=2, β=1)\n"
    "  --out FILE    default: standard output\n"
    "  --split S     study (12,000 images, default) or official (10,000)\n";

static int write_encodings(FILE *f, Session *s, EvalSplit split, Err *e)
{
    const int d = s->m.cfg.latent, n = split_size(s->data, split);
    float *mu = malloc((size_t)n * d * sizeof *mu), *logvar = malloc((size_t)n * d * sizeof *logvar);
    uint8_t *labels = malloc((size_t)n);
    int rc = mu && logvar && labels ? vae_encode_split(&s->m, s->data, split, n, mu, logvar, labels, e)
                                    : err_set(e, "out of memory");
    if (rc == 0) {
        fprintf(f, "index\tlabel");
        for (int j = 0; j < d; j++) fprintf(f, "\tmu_%d", j);
        for (int j = 0; j < d; j++) fprintf(f, "\tlogvar_%d", j);
        fputc('\n', f);
        for (int i = 0; i < n; i++) {
            fprintf(f, "%d\t%d", split_index(s->data, split, i), labels[i]);
            for (int j = 0; j < d; j++) fprintf(f, "\t%.6g", mu[(size_t)i * d + j]);
            for (int j = 0; j < d; j++) fprintf(f, "\t%.6g", logvar[(size_t)i * d + j]);
            fputc('\n', f);
        }
    }
    free(mu), free(logvar), free(labels);
    return rc;
}

int cmd_encode(int argc, char **argv)
{
    ModelArgs a = {0};
    int rc = parse_model_args("encode", encode_help, argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    Session s;
    if (open_session("encode", &a, &s, 1)) return 1;
    Err e;
    if (!a.o.out || strcmp(a.o.out, "-") == 0) {
        rc = write_encodings(stdout, &s, a.o.split, &e) ? cli_fail("encode", &e) : ferror(stdout) ? 1 : 0;
    } else {
        AtomicFile af;
        FILE *f = atomic_open(&af, a.o.out, &e);
        if (!f) rc = cli_fail("encode", (err_prefix(&e, "%s", a.o.out), &e));
        else if (write_encodings(f, &s, a.o.split, &e)) {
            atomic_abort(&af);
            rc = cli_fail("encode", &e);
        } else {
            rc = atomic_commit(&af, &e) ? cli_fail("encode", (err_prefix(&e, "%s", a.o.out), &e)) : 0;
            if (!rc) fprintf(stderr, "wrote %s\n", a.o.out);
        }
    }
    close_session(&s);
    return rc;
}
