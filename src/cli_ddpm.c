/* The DDPM commands: genlab ddpm info | train | eval | sample. */
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
#include "genlab/cli.h"
#include "genlab/ddpm.h"
#include "genlab/paths.h"
#include "genlab/pool.h"
#include "genlab/progress.h"
#include "genlab/render.h"
#include "genlab/rng.h"

enum { OPT_CKPT = 1000, OPT_DATA, OPT_OUT, OPT_THREADS, OPT_JSON, OPT_SPLIT, OPT_LIMIT, OPT_EPOCHS,
       OPT_BATCH, OPT_LR, OPT_SEED, OPT_STEPS, OPT_RESUME, OPT_WEIGHTS_ONLY, OPT_TRAIN_IMAGES,
       OPT_EVAL_IMAGES, OPT_T, OPT_SCHEDULE, OPT_EMA, OPT_N, OPT_SAMPLER, OPT_ETA, OPT_VARIANCE,
       OPT_TRAJECTORY, OPT_FRAMES, OPT_COLS, OPT_CHANNELS };

/* --ckpt, or the shipped checkpoints/ddpm.safetensors.zst. */
static int resolve_ckpt(const char *given, char *path, size_t cap, Err *e)
{
    if (given) {
        snprintf(path, cap, "%s", given);
        return 0;
    }
    if (paths_default_ddpm(path, cap, e)) return -1;
    if (access(path, R_OK) != 0)
        return err_set(e, "no DDPM checkpoint at %s: give one with --ckpt, or train one with genlab ddpm train", path);
    return 0;
}

static int parse_split(const char *cmd, const char *s, EvalSplit *out)
{
    if (strcmp(s, "study") == 0) *out = SPLIT_STUDY;
    else if (strcmp(s, "official") == 0) *out = SPLIT_OFFICIAL;
    else return cli_usage_error(cmd, "--split: expected study or official, got \"%s\"", s), -1;
    return 0;
}

/* --channels A,B,C: the U-Net's widths at 28, 14 and 7 px, checked like a
 * checkpoint's (unet_check_config). */
static int parse_channels(const char *cmd, const char *s, UnetConfig *cfg)
{
    int ch[3], used = 0;
    if (sscanf(s, "%d,%d,%d%n", &ch[0], &ch[1], &ch[2], &used) != 3 || s[used] != '\0')
        return cli_usage_error(cmd, "--channels: expected three numbers like 32,64,192, got \"%s\"", s), -1;
    UnetConfig c = *cfg;
    for (int i = 0; i < 3; i++) c.ch[i] = ch[i];
    Err e;
    if (unet_check_config(&c, &e)) return cli_usage_error(cmd, "--channels: %s", e.msg), -1;
    *cfg = c;
    return 0;
}

/* ==================================================================== info */

static const char info_help[] =
    "usage: genlab ddpm info [--ckpt FILE | --channels A,B,C] [--json]\n"
    "\n"
    "The U-Net's layer table (output shapes, parameters, forward FLOPs per\n"
    "image), for the default configuration, other widths (--channels: at 28,\n"
    "14 and 7 px) or a checkpoint's, with the checkpoint's metadata (training\n"
    "state, test losses).\n";

static int print_layers(UnetConfig cfg, const Checkpoint *ck, int json)
{
    LayerInfo rows[32];
    int n = unet_layers(cfg, rows, 32);
    size_t params = unet_param_count(cfg);
    double flops = unet_forward_flops(cfg);
    if (json) {
        json_t *layers = json_array(), *meta = json_object();
        for (int i = 0; i < n; i++)
            json_array_append_new(layers, json_pack("{s:s,s:s,s:[i,i,i],s:I,s:f}", "name", rows[i].name,
                                                    "kind", rows[i].kind, "output", rows[i].out_c,
                                                    rows[i].out_h, rows[i].out_w, "params",
                                                    (json_int_t)rows[i].params, "flops", rows[i].flops));
        for (int i = 0; ck && i < ck->nmeta; i++)
            json_object_set_new(meta, ck->meta[i].key, json_string(ck->meta[i].value));
        cli_print_json(json_pack("{s:[i,i,i],s:i,s:i,s:I,s:f,s:o,s:o}", "channels", cfg.ch[0], cfg.ch[1],
                                 cfg.ch[2], "emb", cfg.emb, "groups", cfg.groups, "params",
                                 (json_int_t)params, "flops_per_image", flops, "layers", layers,
                                 "metadata", meta));
        return 0;
    }
    printf("U-Net ε-model: channels %d/%d/%d at %d/%d/%d px, time embedding %d, GroupNorm %d groups\n\n",
           cfg.ch[0], cfg.ch[1], cfg.ch[2], cfg.size, cfg.size / 2, cfg.size / 4, cfg.emb, cfg.groups);
    printf("%-10s %-34s %-12s %10s %10s\n", "layer", "kind", "output", "params", "MFLOP/img");
    for (int i = 0; i < n; i++) {
        char shape[32];
        snprintf(shape, sizeof shape, "%d×%d×%d", rows[i].out_c, rows[i].out_h, rows[i].out_w);
        /* kinds hold multi-byte characters: pad by display width, not bytes */
        printf("%-10s %s%*s %-12s %10zu %10.2f\n", rows[i].name, rows[i].kind,
               34 - utf8_columns(rows[i].kind), "", shape, rows[i].params, rows[i].flops / 1e6);
    }
    printf("\ntotal: %zu parameters, %.3f GFLOP forward per image (FLOP = 2 × multiply-adds)\n", params,
           flops / 1e9);
    for (int i = 0; ck && i < ck->nmeta; i++) printf("  %-24s %s\n", ck->meta[i].key, ck->meta[i].value);
    return 0;
}

static int cmd_ddpm_info(int argc, char **argv)
{
    static const struct option longopts[] = {{"ckpt", required_argument, NULL, OPT_CKPT},
                                             {"channels", required_argument, NULL, OPT_CHANNELS},
                                             {"json", no_argument, NULL, OPT_JSON},
                                             {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "ddpm info", *ckpt = NULL;
    UnetConfig cfg = unet_default_config();
    int json = 0, widths = 0, c;
    FOR_EACH_OPT(c, argc, argv, longopts) {
        switch (c) {
        case 'h': fputs(info_help, stdout); return 0;
        case OPT_CKPT: ckpt = optarg; break;
        case OPT_CHANNELS:
            if (parse_channels(cmd, optarg, &cfg)) return 2;
            widths = 1;
            break;
        case OPT_JSON: json = 1; break;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
    if (ckpt && widths) return cli_usage_error(cmd, "--channels and --ckpt: a checkpoint has its own widths");
    if (!ckpt) return print_layers(cfg, NULL, json);
    Unet m;
    Schedule s;
    Checkpoint ck;
    Err e;
    if (ddpm_load_checkpoint(ckpt, &m, &s, &ck, &e)) return cli_fail(cmd, &e);
    int rc = print_layers(m.cfg, &ck, json);
    unet_free(&m);
    schedule_free(&s);
    ckpt_free(&ck);
    return rc;
}

/* =================================================================== train */

static const char train_help[] =
    "usage: genlab ddpm train [options]\n"
    "\n"
    "Trains the DDPM's U-Net to predict the noise ε added to the study's 48,000\n"
    "training images (scaled to [−1, 1]) at a uniform step t, and measures the\n"
    "test ε-MSE of its EMA weights on the 12,000 held out after every epoch.\n"
    "Defaults are the study's recipe. The run is saved after every epoch, every\n"
    "--save-every minutes and on Ctrl-C, with the raw weights and Adam's state,\n"
    "so --resume continues it exactly.\n"
    "\n"
    "  --epochs N         (default 20)\n"
    "  --batch N          (default 128)\n"
    "  --lr X             Adam learning rate (default 0.0001)\n"
    "  --T N              diffusion steps (default 4000)\n"
    "  --schedule S       cosine or linear (default cosine)\n"
    "  --ema D            EMA decay of the weights (default 0.999, with warm-up)\n"
    "  --seed S           weights, data order, t and noise (default 0)\n"
    "  --channels A,B,C   the U-Net's widths at 28, 14 and 7 px (default 32,64,192;\n"
    "                     genlab ddpm info --channels shows their cost)\n"
    "  --steps N          stop after N optimizer steps in total\n"
    "  --train-images N   train on the first N study-train images only\n"
    "  --eval-images N    evaluate on the first N test images only\n"
    "  --out FILE         checkpoint to write (default ddpm-run.safetensors.zst)\n"
    "  --weights-only     at the end, write only the EMA weights (shipped form)\n"
    "  --resume FILE      continue the run saved in FILE (--epochs may raise its total)\n"
    "  --threads N        worker threads (default: all cores)\n"
    "  --data DIR         other MNIST-shaped IDX files\n"
    "  --json             print the final metrics as one JSON line on stdout\n";

typedef struct {
    DdpmTrainer *t;
    const char *out;
    int tty, json;
    double last_draw, smooth, last_save;
    int save_failed;
    Err save_err;
} TrainView;

static int batches_of(const DdpmTrainer *t) { return (t->ntrain + t->cfg.batch - 1) / t->cfg.batch; }

static void draw_progress(const TrainView *v)
{
    const DdpmTrainer *t = v->t;
    double ips = t->train_seconds > 0 ? (double)t->images_seen / t->train_seconds : 0;
    int64_t left = (int64_t)(t->cfg.epochs - t->epoch) * t->ntrain - (int64_t)t->batch_in_epoch * t->cfg.batch;
    ProgressInfo p = {t->epoch + 1, t->cfg.epochs, t->batch_in_epoch, batches_of(t), v->smooth, ips,
                      ips > 0 ? (double)left / ips : -1};
    char line[512];
    struct winsize ws;
    int width = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col - 1 : 79;
    progress_format(line, sizeof line, &p, width, 1);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
}

/* A quick save (no measuring): every few minutes and after each epoch. */
static void save_now(TrainView *v)
{
    if (ddpm_trainer_checkpoint(v->t, v->out, &v->save_err)) v->save_failed = 1;
    v->last_save = monotonic_seconds();
}

#define SAVE_EVERY_SECONDS 300.0 /* a long run loses at most five minutes */

static void on_batch(void *ctx, const DdpmTrainer *t, double loss)
{
    TrainView *v = ctx;
    v->smooth = v->smooth == 0 ? loss : 0.98 * v->smooth + 0.02 * loss;
    double now = monotonic_seconds();
    if (v->tty && now - v->last_draw > 0.1) {
        v->last_draw = now;
        draw_progress(v);
    }
    if (now - v->last_save > SAVE_EVERY_SECONDS && t->batch_in_epoch < batches_of(t)) save_now(v);
}

static void on_epoch(void *ctx, const DdpmTrainer *t, const DdpmEpochStats *s)
{
    TrainView *v = ctx;
    if (v->tty) fprintf(stderr, "\r\033[K");
    FILE *f = v->json ? stderr : stdout;
    fprintf(f, "epoch %2d/%d  train loss %.5f  test loss %.5f ± %.5f (EMA, %d images)  %7.1f s  %5.1f img/s\n",
            s->epoch, t->cfg.epochs, s->train_loss, s->test.loss, s->test.stderr_, s->test.n, s->seconds,
            s->seconds > 0 ? s->images / s->seconds : 0);
    fflush(f);
    save_now(v);
}

typedef struct {
    DdpmConfig cfg;
    const char *out, *resume, *data;
    int weights_only, epochs_set, json;
    const char *recipe_opt; /* an option that sets the recipe (not allowed with --resume) */
} TrainArgs;

static int parse_train_args(int argc, char **argv, TrainArgs *a)
{
    static const struct option longopts[] = {
        {"epochs", required_argument, NULL, OPT_EPOCHS}, {"batch", required_argument, NULL, OPT_BATCH},
        {"lr", required_argument, NULL, OPT_LR}, {"T", required_argument, NULL, OPT_T},
        {"schedule", required_argument, NULL, OPT_SCHEDULE}, {"ema", required_argument, NULL, OPT_EMA},
        {"seed", required_argument, NULL, OPT_SEED}, {"steps", required_argument, NULL, OPT_STEPS},
        {"train-images", required_argument, NULL, OPT_TRAIN_IMAGES},
        {"eval-images", required_argument, NULL, OPT_EVAL_IMAGES},
        {"out", required_argument, NULL, OPT_OUT}, {"weights-only", no_argument, NULL, OPT_WEIGHTS_ONLY},
        {"resume", required_argument, NULL, OPT_RESUME}, {"threads", required_argument, NULL, OPT_THREADS},
        {"data", required_argument, NULL, OPT_DATA}, {"json", no_argument, NULL, OPT_JSON},
        {"channels", required_argument, NULL, OPT_CHANNELS}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "ddpm train";
    DdpmConfig *c = &a->cfg;
    int ch;
    FOR_EACH_OPT(ch, argc, argv, longopts) {
        int bad = 0;
        switch (ch) {
        case 'h': fputs(train_help, stdout); return -1;
        case OPT_EPOCHS: bad = cli_int(cmd, "epochs", optarg, 1, 100000, &c->epochs), a->epochs_set = 1; break;
        case OPT_BATCH:
            a->recipe_opt = "--batch";
            bad = cli_int(cmd, "batch", optarg, 1, 4096, &c->batch);
            break;
        case OPT_LR:
            a->recipe_opt = "--lr";
            bad = cli_float(cmd, "lr", optarg, 1e-12, 10, &c->lr);
            break;
        case OPT_T:
            a->recipe_opt = "--T";
            bad = cli_int(cmd, "T", optarg, 2, 100000, &c->T);
            break;
        case OPT_SCHEDULE:
            a->recipe_opt = "--schedule";
            if (schedule_kind_parse(optarg, &c->schedule))
                return cli_usage_error(cmd, "--schedule: expected cosine or linear, got \"%s\"", optarg);
            break;
        case OPT_EMA:
            a->recipe_opt = "--ema";
            bad = cli_float(cmd, "ema", optarg, 0, 0.999999, &c->ema_decay);
            break;
        case OPT_SEED:
            a->recipe_opt = "--seed";
            bad = cli_u64(cmd, "seed", optarg, &c->seed);
            break;
        case OPT_STEPS: bad = cli_i64(cmd, "steps", optarg, 1, INT64_MAX, &c->max_steps); break;
        case OPT_CHANNELS:
            a->recipe_opt = "--channels";
            if (parse_channels(cmd, optarg, &c->model)) return 2;
            break;
        case OPT_TRAIN_IMAGES:
            a->recipe_opt = "--train-images";
            bad = cli_int(cmd, "train-images", optarg, 1, STUDY_TRAIN_N, &c->train_limit);
            break;
        case OPT_EVAL_IMAGES: bad = cli_int(cmd, "eval-images", optarg, 1, 100000, &c->eval_limit); break;
        case OPT_OUT: a->out = optarg; break;
        case OPT_WEIGHTS_ONLY: a->weights_only = 1; break;
        case OPT_RESUME: a->resume = optarg; break;
        case OPT_THREADS: bad = cli_int(cmd, "threads", optarg, 1, POOL_MAX, &c->threads); break;
        case OPT_DATA: a->data = optarg; break;
        case OPT_JSON: a->json = 1; break;
        default: return cli_usage_error(cmd, "unknown option");
        }
        if (bad) return 2;
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
    if (a->resume && a->recipe_opt)
        return cli_usage_error(cmd, "%s cannot change a resumed run (it continues with its own settings; "
                                    "--epochs, --steps, --threads and --eval-images can)", a->recipe_opt);
    if (a->resume && a->weights_only && !a->out)
        return cli_usage_error(cmd, "--weights-only with --resume needs --out, or it would replace the "
                                    "training checkpoint it resumes");
    return 0;
}

static void print_train_result(const DdpmTrainer *t, const char *out)
{
    cli_print_json(json_pack("{s:s,s:i,s:I,s:f,s:f,s:{s:f,s:f,s:i}}", "out", out, "epoch", t->epoch,
                             "step", (json_int_t)t->step, "train_seconds", t->train_seconds,
                             "images_per_second", t->train_seconds > 0 ? t->images_seen / t->train_seconds : 0.0,
                             "study", "loss", t->last_test.loss, "stderr", t->last_test.stderr_, "n",
                             t->last_test.n));
}

static int run_training(DdpmTrainer *t, TrainView *v, int weights_only)
{
    DdpmHooks hooks = {.ctx = v, .on_batch = on_batch, .on_epoch = on_epoch, .stop = cli_catch_interrupt()};
    Err e;
    int rc = ddpm_trainer_run(t, &hooks, &e);
    cli_release_interrupt();
    if (v->tty) fprintf(stderr, "\r\033[K");
    if (rc) return cli_fail("ddpm train", &e);
    if (v->save_failed) return cli_fail("ddpm train", &v->save_err);
    int interrupted = atomic_load(hooks.stop);
    rc = interrupted ? ddpm_trainer_checkpoint(t, v->out, &e) : ddpm_trainer_save(t, v->out, !weights_only, &e);
    if (rc) return cli_fail("ddpm train", &e);
    if (interrupted) {
        fprintf(stderr, "genlab ddpm train: interrupted at epoch %d, step %" PRId64 "; saved %s (continue with --resume %s)\n",
                t->epoch + 1, t->step, v->out, v->out);
        return 130;
    }
    if (v->json) print_train_result(t, v->out);
    else fprintf(stderr, "saved %s\n", v->out);
    return 0;
}

static int cmd_ddpm_train(int argc, char **argv)
{
    const char *cmd = "ddpm train";
    TrainArgs a = {.cfg = ddpm_config_default()};
    int rc = parse_train_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    Err e;
    StudyData *data = malloc(sizeof *data);
    if (!data) return err_set(&e, "out of memory"), cli_fail(cmd, &e);
    if (study_data_load(data, a.data, &e)) {
        free(data);
        return cli_fail(cmd, &e);
    }
    DdpmTrainer t;
    if (a.resume)
        rc = ddpm_trainer_resume(&t, a.resume, data, a.epochs_set ? a.cfg.epochs : 0, a.cfg.max_steps,
                                 a.cfg.threads, &e);
    else rc = ddpm_trainer_init(&t, &a.cfg, data, &e);
    if (rc) {
        study_data_free(data);
        free(data);
        return cli_fail(cmd, &e);
    }
    if (a.resume && a.cfg.eval_limit) t.cfg.eval_limit = a.cfg.eval_limit; /* not saved: per run */
    char out[4096];
    snprintf(out, sizeof out, "%s", a.out ? a.out : a.resume ? a.resume : "ddpm-run.safetensors.zst");
    TrainView v = {.t = &t, .out = out, .tty = isatty(2), .json = a.json, .last_save = monotonic_seconds()};
    if (!a.json || v.tty)
        fprintf(stderr, "%s DDPM · U-Net %zu params, %.2f GFLOP/img · %s T=%d · %d epochs × %d images · batch %d · %d threads · BLAS %s\n",
                a.resume ? "resuming" : "training", t.model.nparams, unet_forward_flops(t.cfg.model) / 1e9,
                schedule_kind_name(t.cfg.schedule), t.cfg.T, t.cfg.epochs, t.ntrain, t.cfg.batch,
                t.cfg.threads, blas_core_name());
    rc = run_training(&t, &v, a.weights_only);
    ddpm_trainer_free(&t);
    study_data_free(data);
    free(data);
    return rc;
}

/* ==================================================================== eval */

static const char eval_help[] =
    "usage: genlab ddpm eval [--ckpt FILE] [--split study|official] [--json]\n"
    "\n"
    "Test ε-MSE of a DDPM checkpoint: every test image is noised at 4\n"
    "stratified steps with noise from the fixed evaluation seed (the same\n"
    "draws on every run), and the loss is the mean over images, with its\n"
    "standard error.\n"
    "\n"
    "  --ckpt FILE      default: the shipped checkpoints/ddpm.safetensors.zst\n"
    "  --split S        study: the 12,000 held-out training images (default);\n"
    "                   official: the 10,000 official test images\n"
    "  --limit N        evaluate the first N images only\n"
    "  --threads N      worker threads (default: all cores)\n"
    "  --data DIR       other MNIST-shaped IDX files\n"
    "  --json           one JSON line: loss, stderr, n, split, ckpt\n";

static int cmd_ddpm_eval(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"ckpt", required_argument, NULL, OPT_CKPT}, {"split", required_argument, NULL, OPT_SPLIT},
        {"limit", required_argument, NULL, OPT_LIMIT}, {"threads", required_argument, NULL, OPT_THREADS},
        {"data", required_argument, NULL, OPT_DATA}, {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "ddpm eval", *ckpt = NULL, *data_dir = NULL;
    EvalSplit split = SPLIT_STUDY;
    int json = 0, limit = 0, threads = 0, c;
    FOR_EACH_OPT(c, argc, argv, longopts) {
        int bad = 0;
        switch (c) {
        case 'h': fputs(eval_help, stdout); return 0;
        case OPT_CKPT: ckpt = optarg; break;
        case OPT_SPLIT: bad = parse_split(cmd, optarg, &split); break;
        case OPT_LIMIT: bad = cli_int(cmd, "limit", optarg, 1, 100000, &limit); break;
        case OPT_THREADS: bad = cli_int(cmd, "threads", optarg, 1, POOL_MAX, &threads); break;
        case OPT_DATA: data_dir = optarg; break;
        case OPT_JSON: json = 1; break;
        default: return cli_usage_error(cmd, "unknown option");
        }
        if (bad) return 2;
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
    char path[4096];
    Err e;
    if (resolve_ckpt(ckpt, path, sizeof path, &e)) return cli_fail(cmd, &e);
    Unet m;
    Schedule s;
    Checkpoint ck;
    if (ddpm_load_checkpoint(path, &m, &s, &ck, &e)) return cli_fail(cmd, &e);
    StudyData *data = malloc(sizeof *data);
    int rc = data ? study_data_load(data, data_dir, &e) : err_set(&e, "out of memory");
    DdpmEval r;
    double t0 = monotonic_seconds();
    if (rc == 0) {
        rc = ddpm_evaluate(&m, &s, data, split, limit, threads, &r, &e);
        study_data_free(data);
    }
    free(data);
    if (rc == 0 && json) {
        json_t *strata = json_array();
        for (int k = 0; k < DDPM_EVAL_DRAWS; k++) json_array_append_new(strata, json_real(r.stratum[k]));
        cli_print_json(json_pack("{s:s,s:s,s:f,s:f,s:i,s:i,s:o,s:f}", "ckpt", path, "split",
                                 split == SPLIT_STUDY ? "study" : "official", "loss", r.loss, "stderr",
                                 r.stderr_, "n", r.n, "draws_per_image", DDPM_EVAL_DRAWS, "loss_by_t_quarter",
                                 strata, "seconds", monotonic_seconds() - t0));
    } else if (rc == 0) {
        printf("%s · %s split, %d images × %d draws: ε-MSE %.5f ± %.5f (standard error)\n", path,
               split == SPLIT_STUDY ? "study" : "official", r.n, DDPM_EVAL_DRAWS, r.loss, r.stderr_);
        for (int k = 0; k < DDPM_EVAL_DRAWS; k++)
            printf("  t in [%4d, %4d): %.5f\n", k * s.T / DDPM_EVAL_DRAWS, (k + 1) * s.T / DDPM_EVAL_DRAWS,
                   r.stratum[k]);
    }
    unet_free(&m);
    schedule_free(&s);
    ckpt_free(&ck);
    return rc ? cli_fail(cmd, &e) : 0;
}

/* ================================================================== sample */

static const char sample_help[] =
    "usage: genlab ddpm sample [options] --out FILE\n"
    "\n"
    "Generates digits from pure noise with a DDPM checkpoint. The same seed\n"
    "gives the same digits, and the first k of n do not depend on n.\n"
    "\n"
    "  --ckpt FILE        default: the shipped checkpoints/ddpm.safetensors.zst\n"
    "  --n N              digits (default 16)\n"
    "  --sampler S        ddim (default) or ddpm (ancestral)\n"
    "  --steps K          denoising steps (default 50; the full chain is K = T)\n"
    "  --eta E            DDIM noise, 0 = deterministic (default 0)\n"
    "  --variance V       DDPM σ²: large (β_t) or small (β̃_t, default)\n"
    "  --seed S           (default 0)\n"
    "  --out FILE         .png, .pgm or .idx: the final digits as a grid\n"
    "  --cols N           grid columns (default: a square)\n"
    "  --trajectory FILE  also the chain as a strip, one row per digit: x_t at\n"
    "                     --frames evenly spaced steps, x_T first, x_0 last\n"
    "  --frames N         frames in the strip (default 10)\n"
    "  --threads N        worker threads (default: all cores)\n"
    "  --json             one JSON line: seconds, steps, n, out\n";

typedef struct {
    int n, frames, steps_total;
    float *strip; /* [n][frames][D] in [−1, 1] */
} Trajectory;

/* Frame f of F shows the chain after step ⌈f·K/(F−1)⌉ − 1 (f = 0: x_T). */
static int on_frame(void *ctx, int i, const float *x, const float *x0_hat, int B)
{
    (void)x0_hat;
    Trajectory *tr = ctx;
    const int F = tr->frames, K = tr->steps_total;
    for (int f = 1; f < F; f++) {
        int at = (int)ceil((double)f * K / (F - 1)) - 1;
        if (at != i) continue;
        for (int b = 0; b < B && b < tr->n; b++)
            memcpy(tr->strip + ((size_t)b * F + f) * MNIST_PIXELS, x + (size_t)b * MNIST_PIXELS,
                   MNIST_PIXELS * sizeof *x);
    }
    return 0;
}

static void to_unit(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * (x[i] + 1.0f);
}

typedef struct {
    const char *ckpt, *out, *trajectory;
    int n, steps, steps_set, frames, cols, threads, json;
    SamplerKind sampler;
    VarianceKind variance;
    float eta;
    uint64_t seed;
} SampleArgs;

static int parse_sample_args(int argc, char **argv, SampleArgs *a)
{
    static const struct option longopts[] = {
        {"ckpt", required_argument, NULL, OPT_CKPT}, {"n", required_argument, NULL, OPT_N},
        {"sampler", required_argument, NULL, OPT_SAMPLER}, {"steps", required_argument, NULL, OPT_STEPS},
        {"eta", required_argument, NULL, OPT_ETA}, {"variance", required_argument, NULL, OPT_VARIANCE},
        {"seed", required_argument, NULL, OPT_SEED}, {"out", required_argument, NULL, OPT_OUT},
        {"cols", required_argument, NULL, OPT_COLS}, {"trajectory", required_argument, NULL, OPT_TRAJECTORY},
        {"frames", required_argument, NULL, OPT_FRAMES}, {"threads", required_argument, NULL, OPT_THREADS},
        {"json", no_argument, NULL, OPT_JSON}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "ddpm sample";
    int c;
    FOR_EACH_OPT(c, argc, argv, longopts) {
        int bad = 0;
        switch (c) {
        case 'h': fputs(sample_help, stdout); return -1;
        case OPT_CKPT: a->ckpt = optarg; break;
        case OPT_N: bad = cli_int(cmd, "n", optarg, 1, 10000, &a->n); break;
        case OPT_SAMPLER:
            if (sampler_kind_parse(optarg, &a->sampler))
                return cli_usage_error(cmd, "--sampler: expected ddpm or ddim, got \"%s\"", optarg);
            break;
        case OPT_STEPS: bad = cli_int(cmd, "steps", optarg, 1, 100000, &a->steps), a->steps_set = 1; break;
        case OPT_ETA: bad = cli_float(cmd, "eta", optarg, 0, 10, &a->eta); break;
        case OPT_VARIANCE:
            if (strcmp(optarg, "large") == 0) a->variance = VARIANCE_LARGE;
            else if (strcmp(optarg, "small") == 0) a->variance = VARIANCE_SMALL;
            else return cli_usage_error(cmd, "--variance: expected large or small, got \"%s\"", optarg);
            break;
        case OPT_SEED: bad = cli_u64(cmd, "seed", optarg, &a->seed); break;
        case OPT_OUT: a->out = optarg; break;
        case OPT_COLS: bad = cli_int(cmd, "cols", optarg, 1, 10000, &a->cols); break;
        case OPT_TRAJECTORY: a->trajectory = optarg; break;
        case OPT_FRAMES: bad = cli_int(cmd, "frames", optarg, 2, 1000, &a->frames); break;
        case OPT_THREADS: bad = cli_int(cmd, "threads", optarg, 1, POOL_MAX, &a->threads); break;
        case OPT_JSON: a->json = 1; break;
        default: return cli_usage_error(cmd, "unknown option");
        }
        if (bad) return 2;
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
    if (!a->out) return cli_usage_error(cmd, "--out FILE is required (.png, .pgm or .idx)");
    if (cli_check_image_name(cmd, a->out) || (a->trajectory && cli_check_image_name(cmd, a->trajectory)))
        return 2;
    return 0;
}

/* Runs the chain; the trajectory (if asked) fills as it goes. */
static int sample_chain(const SampleArgs *a, Unet *m, const Schedule *s, float *out, Trajectory *tr,
                        double *seconds, Err *e)
{
    if (a->steps > s->T)
        return err_set(e, "--steps %d is more than the checkpoint's T = %d", a->steps, s->T);
    SamplerPlan plan;
    if (sampler_plan_create(&plan, s, a->sampler, a->steps, a->eta, a->variance, e)) return -1;
    DdpmRunner *r = ddpm_runner_create(m, a->threads, a->n, e);
    int rc = r ? 0 : -1;
    double t0 = monotonic_seconds();
    if (rc == 0) rc = diffusion_sample(&plan, ddpm_runner_eps, r, tr ? on_frame : NULL, tr, a->seed, a->n,
                                       MNIST_PIXELS, out, e) < 0 ? -1 : 0;
    *seconds = monotonic_seconds() - t0;
    ddpm_runner_free(r);
    sampler_plan_free(&plan);
    return rc;
}

/* x_T of each chain, as diffusion_sample draws it, for the strip's first frame. */
static void first_frames(Trajectory *tr, uint64_t seed)
{
    for (int b = 0; b < tr->n; b++) {
        Rng r;
        rng_seed(&r, seed, RNG_SAMPLE, (uint64_t)b);
        rng_fill_normal(&r, tr->strip + (size_t)b * tr->frames * MNIST_PIXELS, MNIST_PIXELS);
    }
}

static int cmd_ddpm_sample(int argc, char **argv)
{
    const char *cmd = "ddpm sample";
    SampleArgs a = {.n = 16, .steps = 50, .frames = 10, .sampler = SAMPLER_DDIM, .variance = VARIANCE_SMALL};
    int rc = parse_sample_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    char path[4096];
    Err e;
    if (resolve_ckpt(a.ckpt, path, sizeof path, &e)) return cli_fail(cmd, &e);
    Unet m;
    Schedule s;
    Checkpoint ck;
    if (ddpm_load_checkpoint(path, &m, &s, &ck, &e)) return cli_fail(cmd, &e);
    if (a.sampler == SAMPLER_DDPM && !a.steps_set) a.steps = s.T; /* ancestral: the full chain */
    float *out = malloc((size_t)a.n * MNIST_PIXELS * sizeof *out);
    Trajectory tr = {.n = a.n, .frames = a.frames, .steps_total = a.steps};
    if (a.trajectory) tr.strip = calloc((size_t)a.n * a.frames * MNIST_PIXELS, sizeof *tr.strip);
    double seconds = 0;
    rc = out && (!a.trajectory || tr.strip) ? 0 : err_set(&e, "out of memory for %d digits", a.n);
    if (rc == 0 && tr.strip) first_frames(&tr, a.seed);
    if (rc == 0) rc = sample_chain(&a, &m, &s, out, tr.strip ? &tr : NULL, &seconds, &e);
    if (rc) rc = cli_fail(cmd, &e);
    if (rc == 0) {
        to_unit(out, (size_t)a.n * MNIST_PIXELS);
        rc = cli_write_grid(cmd, a.out, out, a.n, a.cols ? a.cols : (int)ceil(sqrt((double)a.n)));
    }
    if (rc == 0 && tr.strip) {
        for (size_t i = 0; i < (size_t)a.n * a.frames * MNIST_PIXELS; i++)
            tr.strip[i] = fminf(1.0f, fmaxf(-1.0f, tr.strip[i])); /* x_t may leave [−1, 1] */
        to_unit(tr.strip, (size_t)a.n * a.frames * MNIST_PIXELS);
        rc = cli_write_grid(cmd, a.trajectory, tr.strip, a.n * a.frames, a.frames);
    }
    if (rc == 0 && a.json)
        cli_print_json(json_pack("{s:s,s:s,s:i,s:i,s:f,s:I,s:f}", "out", a.out, "sampler",
                                 sampler_kind_name(a.sampler), "steps", a.steps, "n", a.n, "eta", (double)a.eta,
                                 "seed", (json_int_t)a.seed, "seconds", seconds));
    else if (rc == 0)
        fprintf(stderr, "%d digits, %s %d steps, in %.2f s\n", a.n, sampler_kind_name(a.sampler), a.steps, seconds);
    free(out);
    free(tr.strip);
    unet_free(&m);
    schedule_free(&s);
    ckpt_free(&ck);
    return rc;
}

/* ================================================================ dispatch */

static const char ddpm_help[] =
    "usage: genlab ddpm COMMAND [options]     (genlab ddpm COMMAND --help)\n"
    "\n"
    "  info     the U-Net's layer table, or a checkpoint's contents\n"
    "  train    train the DDPM (the study's recipe by default)\n"
    "  eval     test ε-MSE of a checkpoint, with its standard error\n"
    "  sample   digits from noise (DDIM or the ancestral DDPM chain), as an image\n";

int cmd_ddpm(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } subs[] = {{"info", cmd_ddpm_info}, {"train", cmd_ddpm_train}, {"eval", cmd_ddpm_eval},
                {"sample", cmd_ddpm_sample}};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(ddpm_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        if (strcmp(argv[1], subs[i].name) == 0) return subs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "genlab ddpm: unknown command \"%s\"\n%s", argv[1], ddpm_help);
    return 2;
}
