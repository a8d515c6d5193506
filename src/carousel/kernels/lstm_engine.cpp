// Fused LSTM engine: the recurrence of every LSTM form of carousel.cells.LSTM, forward and
// backward (own BPTT), in one C++ loop over time per layer and direction.
//
// What does not recur is computed by the caller: the input projection xp = W x (+ biases, + layer
// norm of W x) for all steps in one matrix product. Per step the engine makes one BLAS call for
// the recurrent product and one pass of vectorised elementwise work over raw memory (no tensor
// operations inside the loop). The backward pass walks time in reverse with one BLAS call per
// step and forms every weight gradient with one large matrix product at the end.
//
// Shapes (B batch, H cells, P = proj_size or H, G = present blocks * H, R = recurrent blocks * H,
// F = width of the fed-back state: P, or H for the full-peephole form that feeds back c):
//   xp (T, B, G), blocks in the order i, f, g, o (absent ones left out);
//   w_rec (R, F) weight_hh or weight_ch; w_hr (P, H); w_gr (3H, 3H); peepholes and norms (H) or (R).

#include <ATen/ATen.h>
#include <ATen/Config.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#if AT_MKLDNN_ENABLED()
namespace at::native {
// Exported by libtorch_cpu (ATen/native/mkldnn/Matmul.cpp); its header is not installed.
TORCH_API void mkldnn_matmul(const Tensor& mat1, const Tensor& mat2, const Tensor& result, float beta, float alpha);
}  // namespace at::native
#endif

extern "C" {
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc);
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc);
}

namespace carousel {
namespace {

using at::vec::Vectorized;

// Column-major BLAS on row-major data: C (rows x n) = A (rows x k) . op(W), where W is row-major
// and op(W) = W^T (W is n x k) when transpose_w, else W (k x n). beta = 0 overwrites C.
template <typename T>
void gemm(const T* A, const T* W, T* C, int64_t rows, int64_t k, int64_t n, bool transpose_w, T beta);

// oneDNN's matmul (through ATen, the library torch's own LSTM runs on) beats the BLAS on large
// steps, by about 1.3x on AVX-512 machines; its fixed cost (~15 us a call) loses on small ones.
constexpr int64_t kOneDnnMinWork = int64_t(1) << 22;  // rows * k * n multiply-adds
bool onednn_usable = AT_MKLDNN_ENABLED();

template <>
void gemm<float>(const float* A, const float* W, float* C, int64_t rows, int64_t k, int64_t n, bool tw, float beta) {
#if AT_MKLDNN_ENABLED()
  if (onednn_usable && beta == 0.0f && rows * k * n >= kOneDnnMinWork) {
    const auto opts = at::TensorOptions().dtype(at::kFloat);
    auto a = at::from_blob(const_cast<float*>(A), {rows, k}, opts);
    auto w = tw ? at::from_blob(const_cast<float*>(W), {n, k}, opts).t() : at::from_blob(const_cast<float*>(W), {k, n}, opts);
    auto c = at::from_blob(C, {rows, n}, opts);
    try {
      at::native::mkldnn_matmul(a, w, c, 0.0f, 1.0f);
      return;
    } catch (const c10::Error&) {
      onednn_usable = false;  // this build of torch refuses: the BLAS from now on
    }
  }
#endif
  const int M = (int)n, N = (int)rows, K = (int)k, lda = tw ? (int)k : (int)n, ldb = (int)k, ldc = (int)n;
  const float one = 1.0f;
  sgemm_(tw ? "T" : "N", "N", &M, &N, &K, &one, W, &lda, A, &ldb, &beta, C, &ldc);
}

template <>
void gemm<double>(const double* A, const double* W, double* C, int64_t rows, int64_t k, int64_t n, bool tw,
                  double beta) {
  const int M = (int)n, N = (int)rows, K = (int)k, lda = tw ? (int)k : (int)n, ldb = (int)k, ldc = (int)n;
  const double one = 1.0;
  dgemm_(tw ? "T" : "N", "N", &M, &N, &K, &one, W, &lda, A, &ldb, &beta, C, &ldc);
}

enum Act : int64_t { SIGMOID = 0, TANH = 1, IDENTITY = 2, RELU = 3, HARD_SIGMOID = 4, SOFTSIGN = 5, ELU = 6, SOFTPLUS = 7 };

// x = act(x) over n values.
template <typename T>
void activate(int64_t a, T* x, int64_t n) {
  using V = Vectorized<T>;
  switch (a) {
    case SIGMOID:
      at::vec::map([](V v) { return (V(T(1)) + v.neg().exp()).reciprocal(); }, x, x, n);
      return;
    case TANH:
      at::vec::map([](V v) { return v.tanh(); }, x, x, n);
      return;
    case IDENTITY:
      return;
    case RELU:
      for (int64_t j = 0; j < n; ++j) x[j] = x[j] > T(0) ? x[j] : T(0);
      return;
    case HARD_SIGMOID:
      for (int64_t j = 0; j < n; ++j) x[j] = std::min(std::max((x[j] + T(3)) / T(6), T(0)), T(1));
      return;
    case SOFTSIGN:
      for (int64_t j = 0; j < n; ++j) x[j] = x[j] / (T(1) + std::abs(x[j]));
      return;
    case ELU:
      for (int64_t j = 0; j < n; ++j) x[j] = x[j] > T(0) ? x[j] : std::expm1(x[j]);
      return;
    case SOFTPLUS:
      for (int64_t j = 0; j < n; ++j) x[j] = x[j] > T(20) ? x[j] : std::log1p(std::exp(x[j]));
      return;
    default:
      return;
  }
}

// g *= act'(x), the derivative written through the activation's output y = act(x).
template <typename T>
void times_derivative(int64_t a, T* g, const T* y, int64_t n) {
  switch (a) {
    case SIGMOID:
      for (int64_t j = 0; j < n; ++j) g[j] *= y[j] * (T(1) - y[j]);
      return;
    case TANH:
      for (int64_t j = 0; j < n; ++j) g[j] *= T(1) - y[j] * y[j];
      return;
    case IDENTITY:
      return;
    case RELU:
      for (int64_t j = 0; j < n; ++j) g[j] = y[j] > T(0) ? g[j] : T(0);
      return;
    case HARD_SIGMOID:
      for (int64_t j = 0; j < n; ++j) g[j] = (y[j] > T(0) && y[j] < T(1)) ? g[j] / T(6) : T(0);
      return;
    case SOFTSIGN:
      for (int64_t j = 0; j < n; ++j) { T m = T(1) - std::abs(y[j]); g[j] *= m * m; }
      return;
    case ELU:
      for (int64_t j = 0; j < n; ++j) g[j] *= y[j] > T(0) ? T(1) : y[j] + T(1);
      return;
    case SOFTPLUS:
      for (int64_t j = 0; j < n; ++j) g[j] *= -std::expm1(-y[j]);
      return;
    default:
      return;
  }
}

// Normalise n values: out = (x - mean) * rstd; returns rstd. Computed in double: layer norm of a
// near-constant vector (the recurrent term at h = 0) amplifies rounding by rstd.
template <typename T>
T normalise(const T* x, T* out, int64_t n, double eps) {
  double mean = 0;
  for (int64_t j = 0; j < n; ++j) mean += x[j];
  mean /= n;
  double var = 0;
  for (int64_t j = 0; j < n; ++j) { const double d = x[j] - mean; var += d * d; }
  const double rstd = 1.0 / std::sqrt(var / n + eps);
  for (int64_t j = 0; j < n; ++j) out[j] = T((x[j] - mean) * rstd);
  return T(rstd);
}

// dx from dn = dL/d(normalised values n).
template <typename T>
void normalise_backward(const T* dn, const T* n, T rstd, T* dx, int64_t len) {
  double m1 = 0, m2 = 0;
  for (int64_t j = 0; j < len; ++j) { m1 += dn[j]; m2 += double(dn[j]) * n[j]; }
  m1 /= len;
  m2 /= len;
  for (int64_t j = 0; j < len; ++j) dx[j] = T(rstd * (dn[j] - m1 - n[j] * m2));
}

struct Cfg {
  int64_t H, P, F, G, R;
  int64_t off[4];   // block offsets (units of H) of i, f, g, o in xp; -1 when absent
  int64_t roff[4];  // block offsets in the recurrent term; -1 when the block receives none
  bool coupled, peep, ln, proj, fgr, full_peephole;
  int64_t act_g, act_c, act_h;
  double eps = 1e-5;

  explicit Cfg(const std::vector<int64_t>& c) {
    TORCH_CHECK(c.size() == 19, "carousel lstm engine: expected 19 config values, got ", c.size());
    H = c[0];
    P = c[1];
    for (int k = 0; k < 4; ++k) { off[k] = c[2 + k]; roff[k] = c[6 + k]; }
    coupled = c[10]; peep = c[11]; ln = c[12]; proj = c[13]; fgr = c[14]; full_peephole = c[15];
    act_g = c[16]; act_c = c[17]; act_h = c[18];
    G = R = 0;
    for (int k = 0; k < 4; ++k) { G += off[k] >= 0 ? H : 0; R += roff[k] >= 0 ? H : 0; }
    F = full_peephole ? H : P;
  }
};

inline bool given(const at::Tensor& t) { return t.defined() && t.numel() > 0; }

template <typename T>
inline const T* cptr(const at::Tensor& t) { return given(t) ? t.data_ptr<T>() : nullptr; }

template <typename T>
inline T* mptr(at::Tensor& t) { return t.numel() > 0 ? t.data_ptr<T>() : nullptr; }

// Raw views of what both passes read: weights, lengths, the dropout mask and zoneout.
template <typename T>
struct Shared {
  const T *WREC, *WHR, *WGR, *WCI, *WCF, *WCO, *LNHW, *LNCW;
  const int64_t* LEN;
  const T* DROP;
  std::array<const T*, 3> ZM;  // zoneout masks of h, c, a (training), or null
  std::array<T, 3> ZR;         // zoneout rates (evaluation)
  bool zoneout;

  static Shared of(const at::Tensor& w_rec, const at::Tensor& w_hr, const at::Tensor& w_gr, const at::Tensor& w_ci,
                   const at::Tensor& w_cf, const at::Tensor& w_co, const at::Tensor& ln_hh_w, const at::Tensor& ln_c_w,
                   const at::Tensor& lengths, const at::Tensor& drop, const at::Tensor& zmask_h,
                   const at::Tensor& zmask_c, const at::Tensor& zmask_a, double zh, double zc, double za) {
    std::array<const T*, 3> zm = {cptr<T>(zmask_h), cptr<T>(zmask_c), cptr<T>(zmask_a)};
    return {w_rec.data_ptr<T>(), cptr<T>(w_hr), cptr<T>(w_gr), cptr<T>(w_ci), cptr<T>(w_cf), cptr<T>(w_co),
            cptr<T>(ln_hh_w), cptr<T>(ln_c_w), given(lengths) ? lengths.data_ptr<int64_t>() : nullptr,
            cptr<T>(drop), zm, {T(zh), T(zc), T(za)},
            zm[0] || zm[1] || zm[2] || zh > 0 || zc > 0 || za > 0};
  }
};

// ---------------------------------------------------------------------------------- forward
template <typename T>
std::vector<at::Tensor> forward_impl(const Cfg& cfg, const at::Tensor& xp, const at::Tensor& h0, const at::Tensor& c0,
                                     const at::Tensor& a0, const at::Tensor& w_rec, const at::Tensor& w_ci,
                                     const at::Tensor& w_cf, const at::Tensor& w_co, const at::Tensor& ln_hh_w,
                                     const at::Tensor& ln_c_w, const at::Tensor& ln_c_b, const at::Tensor& w_hr,
                                     const at::Tensor& w_gr, const at::Tensor& lengths, const at::Tensor& drop,
                                     const at::Tensor& zmask_h, const at::Tensor& zmask_c, const at::Tensor& zmask_a,
                                     double zh, double zc, double za, bool save, bool keep_c) {
  const int64_t Tn = xp.size(0), B = xp.size(1), H = cfg.H, P = cfg.P, F = cfg.F, G = cfg.G, R = cfg.R;
  const int64_t A3 = 3 * H;
  // What the backward pass needs is kept for every step only when a backward pass will follow;
  // otherwise one step's worth of scratch is reused.
  const int64_t S = save ? Tn : 1;
  auto opts = xp.options();
  auto none = at::empty({0}, opts);
  auto y = at::empty({Tn, B, P}, opts);
  auto gates = at::empty({S, B, G}, opts);  // activations of the present blocks
  auto cs = at::empty({S, B, H}, opts);     // c'_t, the step's new cell state (before zoneout)
  auto sh = at::empty({S, B, H}, opts);     // sigma_h(LN(c'_t))
  auto fed = at::empty({S, B, F}, opts);    // the state fed to the recurrent product, after dropout
  auto cprev = at::empty({S, B, H}, opts);  // c_{t-1} as step t saw it
  auto cseq = keep_c ? at::empty({Tn, B, H}, opts) : none;  // c_t after zoneout, zero on padded steps
  auto hh = cfg.proj ? at::empty({S, B, H}, opts) : none;
  auto rhat = cfg.ln ? at::empty({S, B, R}, opts) : none;
  auto rrstd = cfg.ln ? at::empty({S, B}, opts) : none;
  auto chat = cfg.ln ? at::empty({S, B, H}, opts) : none;
  auto crstd = cfg.ln ? at::empty({S, B}, opts) : none;
  auto aprev = cfg.fgr ? at::empty({S, B, A3}, opts) : none;
  auto h = h0.clone(), c = c0.clone();
  auto a = cfg.fgr ? a0.clone() : none;

  const T* XP = xp.data_ptr<T>();
  const auto [WREC, WHR, WGR, WCI, WCF, WCO, LNHW, LNCW, LEN, DROP, ZM, ZR, zoneout] =
      Shared<T>::of(w_rec, w_hr, w_gr, w_ci, w_cf, w_co, ln_hh_w, ln_c_w, lengths, drop, zmask_h, zmask_c, zmask_a,
                    zh, zc, za);
  const T* LNCB = cptr<T>(ln_c_b);
  T* Y = y.data_ptr<T>();
  T* GA = gates.data_ptr<T>();
  T* CS = cs.data_ptr<T>();
  T* SH = sh.data_ptr<T>();
  T* FED = fed.data_ptr<T>();
  T* CPV = cprev.data_ptr<T>();
  T* CQ = mptr<T>(cseq);
  T* HH = mptr<T>(hh);
  T* RHAT = mptr<T>(rhat);
  T* RRSTD = mptr<T>(rrstd);
  T* CHAT = mptr<T>(chat);
  T* CRSTD = mptr<T>(crstd);
  T* APV = mptr<T>(aprev);
  T* HS = h.data_ptr<T>();
  T* CSt = c.data_ptr<T>();
  T* AS = mptr<T>(a);
  const int64_t oi = cfg.off[0], of = cfg.off[1], og = cfg.off[2], oo = cfg.off[3];

  std::vector<T> r(B * R), gr(cfg.fgr ? B * A3 : 0), hnew(cfg.proj ? B * P : 0), an(cfg.fgr ? A3 : 0);
  std::vector<T> hpre(cfg.proj ? 0 : B * H);

  for (int64_t t = 0; t < Tn; ++t) {
    const int64_t tb = (save ? t : 0) * B;  // row offset into the saved arrays
    const int64_t ob = t * B;               // row offset into the outputs and masks
    T* fedt = FED + tb * F;
    const T* src = cfg.full_peephole ? CSt : HS;
    if (DROP) {
      for (int64_t k = 0; k < B * F; ++k) fedt[k] = src[k] * DROP[k];
    } else {
      std::memcpy(fedt, src, sizeof(T) * B * F);
    }
    std::memcpy(CPV + tb * H, CSt, sizeof(T) * B * H);
    gemm<T>(fedt, WREC, r.data(), B, F, R, true, T(0));
    if (cfg.fgr) {
      std::memcpy(APV + tb * A3, AS, sizeof(T) * B * A3);
      gemm<T>(AS, WGR, gr.data(), B, A3, A3, true, T(0));
    }
    T* hh_t = cfg.proj ? HH + tb * H : hpre.data();
    // Rows are independent: split them over threads when a step has enough work.
    at::parallel_for(0, B, std::max<int64_t>(1, 32768 / G), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t row = tb + b;
      T* rb = r.data() + b * R;
      if (cfg.ln) {
        T* rh = RHAT + row * R;
        RRSTD[row] = normalise<T>(rb, rh, R, cfg.eps);
        for (int64_t j = 0; j < R; ++j) rb[j] = rh[j] * LNHW[j];
      }
      const T* xb = XP + (ob + b) * G;  // the input is there for every step, saved or not
      const T* cp = CPV + row * H;
      T* z = GA + row * G;  // pre-activations, then activations in place
      for (int k = 0; k < 4; ++k) {
        const int64_t o = cfg.off[k];
        if (o < 0) continue;
        T* zk = z + o * H;
        const T* xk = xb + o * H;
        const int64_t ro = cfg.roff[k];
        if (ro >= 0) {
          const T* rk = rb + ro * H;
          for (int64_t j = 0; j < H; ++j) zk[j] = xk[j] + rk[j];
        } else {
          std::memcpy(zk, xk, sizeof(T) * H);
        }
        if (cfg.fgr && k != 2) {
          const T* gk = gr.data() + b * A3 + (k == 3 ? 2 : k) * H;
          for (int64_t j = 0; j < H; ++j) zk[j] += gk[j];
        }
      }
      if (WCI) { T* zi = z + oi * H; for (int64_t j = 0; j < H; ++j) zi[j] += WCI[j] * cp[j]; }
      if (WCF) { T* zf = z + of * H; for (int64_t j = 0; j < H; ++j) zf[j] += WCF[j] * cp[j]; }
      if (oi >= 0) activate<T>(cfg.act_g, z + oi * H, H);
      if (of >= 0) activate<T>(cfg.act_g, z + of * H, H);
      activate<T>(cfg.act_c, z + og * H, H);
      const T* gi = oi >= 0 ? z + oi * H : nullptr;
      const T* gf = of >= 0 ? z + of * H : nullptr;
      const T* gg = z + og * H;
      T* cb = CS + row * H;
      if (gf && gi) for (int64_t j = 0; j < H; ++j) cb[j] = gf[j] * cp[j] + gi[j] * gg[j];
      else if (gf) for (int64_t j = 0; j < H; ++j) cb[j] = gf[j] * cp[j] + gg[j];
      else if (cfg.coupled) for (int64_t j = 0; j < H; ++j) cb[j] = (T(1) - gi[j]) * cp[j] + gi[j] * gg[j];
      else if (gi) for (int64_t j = 0; j < H; ++j) cb[j] = cp[j] + gi[j] * gg[j];
      else for (int64_t j = 0; j < H; ++j) cb[j] = cp[j] + gg[j];
      if (oo >= 0) {
        T* zo = z + oo * H;
        if (WCO) for (int64_t j = 0; j < H; ++j) zo[j] += WCO[j] * cb[j];
        activate<T>(cfg.act_g, zo, H);
      }
      T* sb = SH + row * H;
      if (cfg.ln) {
        T* ch = CHAT + row * H;
        CRSTD[row] = normalise<T>(cb, ch, H, cfg.eps);
        for (int64_t j = 0; j < H; ++j) sb[j] = ch[j] * LNCW[j] + LNCB[j];
      } else {
        std::memcpy(sb, cb, sizeof(T) * H);
      }
      activate<T>(cfg.act_h, sb, H);
      T* hb = hh_t + b * H;
      if (oo >= 0) { const T* go = z + oo * H; for (int64_t j = 0; j < H; ++j) hb[j] = go[j] * sb[j]; }
      else std::memcpy(hb, sb, sizeof(T) * H);
    }
    });
    const T* HN = hh_t;
    if (cfg.proj) {
      gemm<T>(hh_t, WHR, hnew.data(), B, H, P, true, T(0));
      HN = hnew.data();
    }
    // zoneout, padding, outputs
    T* yt = Y + ob * P;
    T* cq = CQ ? CQ + ob * H : nullptr;
    const T* cn = CS + tb * H;
    for (int64_t b = 0; b < B; ++b) {
      if (LEN && t >= LEN[b]) {
        std::memset(yt + b * P, 0, sizeof(T) * P);
        if (cq) std::memset(cq + b * H, 0, sizeof(T) * H);
        continue;
      }
      if (!zoneout) {
        std::memcpy(HS + b * P, HN + b * P, sizeof(T) * P);
        std::memcpy(CSt + b * H, cn + b * H, sizeof(T) * H);
        if (AS) {
          const T* gb = GA + (tb + b) * G;
          for (int64_t j = 0; j < H; ++j) {
            AS[b * A3 + j] = gb[j];
            AS[b * A3 + H + j] = gb[H + j];
            AS[b * A3 + 2 * H + j] = gb[3 * H + j];
          }
        }
      } else {
        auto mix = [&](int s, T* state, const T* fresh, int64_t width) {
          const T* m = ZM[s] ? ZM[s] + (ob + b) * width : nullptr;
          for (int64_t j = 0; j < width; ++j) {
            const T d = m ? m[j] : ZR[s];
            state[j] = d * state[j] + (T(1) - d) * fresh[j];
          }
        };
        mix(0, HS + b * P, HN + b * P, P);
        mix(1, CSt + b * H, cn + b * H, H);
        if (AS) {
          const T* gb = GA + (tb + b) * G;
          for (int64_t j = 0; j < H; ++j) { an[j] = gb[j]; an[H + j] = gb[H + j]; an[2 * H + j] = gb[3 * H + j]; }
          mix(2, AS + b * A3, an.data(), A3);
        }
      }
      std::memcpy(yt + b * P, HS + b * P, sizeof(T) * P);
      if (cq) std::memcpy(cq + b * H, CSt + b * H, sizeof(T) * H);
    }
  }
  return {y, h, c, a, cseq, gates, cs, sh, fed, hh, rhat, rrstd, chat, crstd, aprev, cprev};
}

// ---------------------------------------------------------------------------------- backward
template <typename T>
std::vector<at::Tensor> backward_impl(
    const Cfg& cfg, const at::Tensor& gy, const at::Tensor& ghT, const at::Tensor& gcT, const at::Tensor& gaT,
    const at::Tensor& gcseq, const at::Tensor& w_rec, const at::Tensor& w_ci, const at::Tensor& w_cf,
    const at::Tensor& w_co, const at::Tensor& ln_hh_w, const at::Tensor& ln_c_w, const at::Tensor& w_hr,
    const at::Tensor& w_gr, const at::Tensor& lengths, const at::Tensor& drop, const at::Tensor& zmask_h,
    const at::Tensor& zmask_c, const at::Tensor& zmask_a, double zh, double zc, double za, const at::Tensor& gates,
    const at::Tensor& cs, const at::Tensor& sh, const at::Tensor& fed, const at::Tensor& hh, const at::Tensor& rhat,
    const at::Tensor& rrstd, const at::Tensor& chat, const at::Tensor& crstd, const at::Tensor& aprev,
    const at::Tensor& cprev) {
  const int64_t Tn = gates.size(0), B = gates.size(1), H = cfg.H, P = cfg.P, F = cfg.F, G = cfg.G, R = cfg.R;
  const int64_t A3 = 3 * H;
  auto opts = gates.options();
  auto none = at::empty({0}, opts);
  auto gxp = at::empty({Tn, B, G}, opts);
  // Gradient w.r.t. the recurrent product before its layer norm; gxp itself when every block
  // receives the plain recurrent term.
  const bool du_is_gxp = !cfg.ln && R == G;
  auto du = du_is_gxp ? gxp : at::empty({Tn, B, R}, opts);
  auto dhp = cfg.proj ? at::empty({Tn, B, P}, opts) : none;
  auto dzifo = cfg.fgr ? at::empty({Tn, B, A3}, opts) : none;
  auto dh = ghT.clone(), dc = gcT.clone();
  auto da = cfg.fgr ? gaT.clone() : none;
  std::vector<double> glnh(cfg.ln ? R : 0, 0), glncw(cfg.ln ? H : 0, 0), glncb(cfg.ln ? H : 0, 0);
  std::vector<T> dhnew(B * P), dhh(cfg.proj ? B * H : 0), dfed(B * F), daprev(cfg.fgr ? B * A3 : 0);
  std::vector<T> dcnew(B * H), danew(cfg.fgr ? B * A3 : 0), dcn(H), tmp(H), dn(std::max(R, H)), dr(R);
  std::vector<char> active(B);

  const T* GY = gy.data_ptr<T>();
  const T* GCQ = cptr<T>(gcseq);
  const auto [WREC, WHR, WGR, WCI, WCF, WCO, LNHW, LNCW, LEN, DROP, ZM, ZR, zoneout] =
      Shared<T>::of(w_rec, w_hr, w_gr, w_ci, w_cf, w_co, ln_hh_w, ln_c_w, lengths, drop, zmask_h, zmask_c, zmask_a,
                    zh, zc, za);
  const T* GA = gates.data_ptr<T>();
  const T* CS = cs.data_ptr<T>();
  const T* SH = sh.data_ptr<T>();
  const T* CPV = cprev.data_ptr<T>();
  const T* RHAT = cptr<T>(rhat);
  const T* RRSTD = cptr<T>(rrstd);
  const T* CHAT = cptr<T>(chat);
  const T* CRSTD = cptr<T>(crstd);
  T* GX = gxp.data_ptr<T>();
  T* DU = du.data_ptr<T>();
  T* DHP = mptr<T>(dhp);
  T* DZ3 = mptr<T>(dzifo);
  T* DH = dh.data_ptr<T>();
  T* DC = dc.data_ptr<T>();
  T* DA = mptr<T>(da);
  const int64_t oi = cfg.off[0], of = cfg.off[1], og = cfg.off[2], oo = cfg.off[3];

  for (int64_t t = Tn - 1; t >= 0; --t) {
    const int64_t tb = t * B;
    // (a) Split each state's gradient between the step's new value and the previous state
    // (zoneout); padded rows pass all of it to the previous state.
    for (int64_t b = 0; b < B; ++b) {
      active[b] = !LEN || t < LEN[b];
      if (!active[b]) {
        std::memset(dhnew.data() + b * P, 0, sizeof(T) * P);
        continue;
      }
      auto split = [&](int s, T* carry, const T* extra, T* fresh, int64_t width) {
        const T* m = ZM[s] ? ZM[s] + (tb + b) * width : nullptr;
        for (int64_t j = 0; j < width; ++j) {
          const T g = carry[j] + (extra ? extra[j] : T(0));
          const T d = zoneout ? (m ? m[j] : ZR[s]) : T(0);
          fresh[j] = (T(1) - d) * g;
          carry[j] = d * g;
        }
      };
      split(0, DH + b * P, GY + (tb + b) * P, dhnew.data() + b * P, P);
      split(1, DC + b * H, GCQ ? GCQ + (tb + b) * H : nullptr, dcnew.data() + b * H, H);
      if (DA) split(2, DA + b * A3, nullptr, danew.data() + b * A3, A3);
    }
    // (b) Through the projection.
    const T* DHH = dhnew.data();
    if (cfg.proj) {
      std::memcpy(DHP + tb * P, dhnew.data(), sizeof(T) * B * P);
      gemm<T>(dhnew.data(), WHR, dhh.data(), B, P, H, false, T(0));
      DHH = dhh.data();
    }
    // (c) The cell.
    for (int64_t b = 0; b < B; ++b) {
      const int64_t row = tb + b;
      T* gx = GX + row * G;
      if (!active[b]) {
        std::memset(gx, 0, sizeof(T) * G);
        if (!du_is_gxp) std::memset(DU + row * R, 0, sizeof(T) * R);
        if (DZ3) std::memset(DZ3 + row * A3, 0, sizeof(T) * A3);
        continue;
      }
      const T* gb = GA + row * G;
      const T* cb = CS + row * H;
      const T* cp = CPV + row * H;
      const T* sb = SH + row * H;
      const T* dhb = DHH + b * H;
      const T* dan = DZ3 ? danew.data() + b * A3 : nullptr;
      const T* go = oo >= 0 ? gb + oo * H : nullptr;
      const T* gi = oi >= 0 ? gb + oi * H : nullptr;
      const T* gf = of >= 0 ? gb + of * H : nullptr;
      const T* gg = gb + og * H;
      // h = o * sigma_h(LN(c'))
      if (go) for (int64_t j = 0; j < H; ++j) dcn[j] = dhb[j] * go[j];
      else std::memcpy(dcn.data(), dhb, sizeof(T) * H);
      times_derivative<T>(cfg.act_h, dcn.data(), sb, H);
      if (cfg.ln) {
        const T* ch = CHAT + row * H;
        for (int64_t j = 0; j < H; ++j) {
          glncw[j] += double(dcn[j]) * ch[j];
          glncb[j] += dcn[j];
          dn[j] = dcn[j] * LNCW[j];
        }
        normalise_backward<T>(dn.data(), ch, CRSTD[row], dcn.data(), H);
      }
      const T* dcf = dcnew.data() + b * H;
      for (int64_t j = 0; j < H; ++j) dcn[j] += dcf[j];  // dL/dc'_t, before the output gate's peephole
      if (go) {
        T* gxo = gx + oo * H;
        for (int64_t j = 0; j < H; ++j) gxo[j] = dhb[j] * sb[j] + (dan ? dan[2 * H + j] : T(0));
        times_derivative<T>(cfg.act_g, gxo, go, H);
        if (WCO) for (int64_t j = 0; j < H; ++j) dcn[j] += gxo[j] * WCO[j];
      }
      // c'_t = f c_{t-1} + i g
      T* gxg = gx + og * H;
      if (gi) for (int64_t j = 0; j < H; ++j) gxg[j] = dcn[j] * gi[j];
      else std::memcpy(gxg, dcn.data(), sizeof(T) * H);
      times_derivative<T>(cfg.act_c, gxg, gg, H);
      T* dcp = DC + b * H;
      if (gf) for (int64_t j = 0; j < H; ++j) dcp[j] += dcn[j] * gf[j];
      else if (cfg.coupled) for (int64_t j = 0; j < H; ++j) dcp[j] += dcn[j] * (T(1) - gi[j]);
      else for (int64_t j = 0; j < H; ++j) dcp[j] += dcn[j];
      if (gf) {
        T* gxf = gx + of * H;
        for (int64_t j = 0; j < H; ++j) gxf[j] = dcn[j] * cp[j] + (dan ? dan[H + j] : T(0));
        times_derivative<T>(cfg.act_g, gxf, gf, H);
        if (WCF) for (int64_t j = 0; j < H; ++j) dcp[j] += gxf[j] * WCF[j];
      }
      if (gi) {
        T* gxi = gx + oi * H;
        for (int64_t j = 0; j < H; ++j) gxi[j] = dcn[j] * gg[j] + (dan ? dan[j] : T(0));
        if (cfg.coupled) for (int64_t j = 0; j < H; ++j) gxi[j] -= dcn[j] * cp[j];
        times_derivative<T>(cfg.act_g, gxi, gi, H);
        if (WCI) for (int64_t j = 0; j < H; ++j) dcp[j] += gxi[j] * WCI[j];
      }
      if (DZ3) {
        T* d3 = DZ3 + row * A3;
        std::memcpy(d3, gx, sizeof(T) * 2 * H);
        std::memcpy(d3 + 2 * H, gx + 3 * H, sizeof(T) * H);
      }
      // the recurrent term: gather its blocks, then back through its layer norm
      if (!du_is_gxp) {
        for (int k = 0; k < 4; ++k) {
          if (cfg.roff[k] < 0) continue;
          std::memcpy(dr.data() + cfg.roff[k] * H, gx + cfg.off[k] * H, sizeof(T) * H);
        }
        T* dub = DU + row * R;
        if (cfg.ln) {
          const T* rh = RHAT + row * R;
          for (int64_t j = 0; j < R; ++j) {
            glnh[j] += double(dr[j]) * rh[j];
            dn[j] = dr[j] * LNHW[j];
          }
          normalise_backward<T>(dn.data(), rh, RRSTD[row], dub, R);
        } else {
          std::memcpy(dub, dr.data(), sizeof(T) * R);
        }
      }
    }
    // (d) Into the fed-back state.
    gemm<T>(DU + tb * R, WREC, dfed.data(), B, R, F, false, T(0));
    if (cfg.full_peephole) {
      for (int64_t k = 0; k < B * H; ++k) DC[k] += dfed[k];
    } else if (DROP) {
      for (int64_t k = 0; k < B * P; ++k) DH[k] += dfed[k] * DROP[k];
    } else {
      for (int64_t k = 0; k < B * P; ++k) DH[k] += dfed[k];
    }
    // (e) Full gate recurrence.
    if (cfg.fgr) {
      gemm<T>(DZ3 + tb * A3, WGR, daprev.data(), B, A3, A3, false, T(0));
      for (int64_t k = 0; k < B * A3; ++k) DA[k] += daprev[k];
    }
  }

  const int64_t N = Tn * B;
  auto gw_rec = at::mm(du.reshape({N, R}).t(), fed.reshape({N, F}));
  auto gw_hr = cfg.proj ? at::mm(dhp.reshape({N, P}).t(), hh.reshape({N, H})) : none;
  auto gw_gr = cfg.fgr ? at::mm(dzifo.reshape({N, A3}).t(), aprev.reshape({N, A3})) : none;
  auto block_sum = [&](int64_t off, const at::Tensor& by) {
    return (gxp.narrow(2, off * H, H) * by).sum({0, 1});
  };
  auto gci = given(w_ci) ? block_sum(oi, cprev) : none;
  auto gcf = given(w_cf) ? block_sum(of, cprev) : none;
  auto gco = given(w_co) ? block_sum(oo, cs) : none;
  auto to_tensor = [&](const std::vector<double>& v) {
    if (v.empty()) return none;
    auto out = at::empty({(int64_t)v.size()}, opts);
    T* o = out.data_ptr<T>();
    for (size_t k = 0; k < v.size(); ++k) o[k] = T(v[k]);
    return out;
  };
  return {gxp, dh, dc, da, gw_rec, gci, gcf, gco, to_tensor(glnh), to_tensor(glncw), to_tensor(glncb), gw_hr, gw_gr};
}

// ---------------------------------------------------------------------------------- operators
std::vector<at::Tensor> lstm_forward(const at::Tensor& xp, const at::Tensor& h0, const at::Tensor& c0,
                                     const at::Tensor& a0, const at::Tensor& w_rec, const at::Tensor& w_ci,
                                     const at::Tensor& w_cf, const at::Tensor& w_co, const at::Tensor& ln_hh_w,
                                     const at::Tensor& ln_c_w, const at::Tensor& ln_c_b, const at::Tensor& w_hr,
                                     const at::Tensor& w_gr, const at::Tensor& lengths, const at::Tensor& drop,
                                     const at::Tensor& zmask_h, const at::Tensor& zmask_c, const at::Tensor& zmask_a,
                                     double zh, double zc, double za, bool save, bool keep_c,
                                     std::vector<int64_t> config) {
  Cfg cfg(config);
  TORCH_CHECK(xp.device().is_cpu(), "carousel lstm engine: expected CPU tensors, got ", xp.device());
  TORCH_CHECK(xp.dim() == 3 && xp.size(2) == cfg.G && xp.is_contiguous(), "carousel lstm engine: bad xp");
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "carousel_lstm_forward", [&] {
    out = forward_impl<scalar_t>(cfg, xp, h0, c0, a0, w_rec, w_ci, w_cf, w_co, ln_hh_w, ln_c_w, ln_c_b, w_hr, w_gr,
                                 lengths, drop, zmask_h, zmask_c, zmask_a, zh, zc, za, save, keep_c);
  });
  return out;
}

std::vector<at::Tensor> lstm_backward(
    const at::Tensor& gy, const at::Tensor& ghT, const at::Tensor& gcT, const at::Tensor& gaT,
    const at::Tensor& gcseq, const at::Tensor& w_rec, const at::Tensor& w_ci, const at::Tensor& w_cf,
    const at::Tensor& w_co, const at::Tensor& ln_hh_w, const at::Tensor& ln_c_w, const at::Tensor& w_hr,
    const at::Tensor& w_gr, const at::Tensor& lengths, const at::Tensor& drop, const at::Tensor& zmask_h,
    const at::Tensor& zmask_c, const at::Tensor& zmask_a, double zh, double zc, double za, const at::Tensor& gates,
    const at::Tensor& cs, const at::Tensor& sh, const at::Tensor& fed, const at::Tensor& hh, const at::Tensor& rhat,
    const at::Tensor& rrstd, const at::Tensor& chat, const at::Tensor& crstd, const at::Tensor& aprev,
    const at::Tensor& cprev, std::vector<int64_t> config) {
  Cfg cfg(config);
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "carousel_lstm_backward", [&] {
    out = backward_impl<scalar_t>(cfg, gy, ghT, gcT, gaT, gcseq, w_rec, w_ci, w_cf, w_co, ln_hh_w, ln_c_w, w_hr,
                                  w_gr, lengths, drop, zmask_h, zmask_c, zmask_a, zh, zc, za, gates, cs, sh, fed,
                                  hh, rhat, rrstd, chat, crstd, aprev, cprev);
  });
  return out;
}

}  // namespace
}  // namespace carousel

TORCH_LIBRARY(carousel_engine, m) {
  m.def(
      "lstm_forward(Tensor xp, Tensor h0, Tensor c0, Tensor a0, Tensor w_rec, Tensor w_ci, Tensor w_cf, "
      "Tensor w_co, Tensor ln_hh_w, Tensor ln_c_w, Tensor ln_c_b, Tensor w_hr, Tensor w_gr, Tensor lengths, "
      "Tensor drop, Tensor zmask_h, Tensor zmask_c, Tensor zmask_a, float zh, float zc, float za, bool save, "
      "bool keep_c, int[] config) -> Tensor[]",
      &carousel::lstm_forward);
  m.def(
      "lstm_backward(Tensor gy, Tensor ghT, Tensor gcT, Tensor gaT, Tensor gcseq, Tensor w_rec, Tensor w_ci, "
      "Tensor w_cf, Tensor w_co, Tensor ln_hh_w, Tensor ln_c_w, Tensor w_hr, Tensor w_gr, Tensor lengths, "
      "Tensor drop, Tensor zmask_h, Tensor zmask_c, Tensor zmask_a, float zh, float zc, float za, "
      "Tensor gates, Tensor cs, Tensor sh, Tensor fed, Tensor hh, Tensor rhat, Tensor rrstd, Tensor chat, "
      "Tensor crstd, Tensor aprev, Tensor cprev, int[] config) -> Tensor[]",
      &carousel::lstm_backward);
}
