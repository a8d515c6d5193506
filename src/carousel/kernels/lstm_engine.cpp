// Fused LSTM engine: the recurrence of every LSTM form of carousel.cells.LSTM, forward and
// backward (own BPTT), in one C++ loop over time per layer and direction.
//
// What does not recur is computed by the caller: the input projection xp = W x (+ biases, + layer
// norm of W x) for all steps in one matrix product. Per step the engine does one matrix product
// for the recurrent term and one fused pass of elementwise work. The backward pass walks time in
// reverse with one matrix product per step, and forms every weight gradient with one large matrix
// product at the end.
//
// Layout (B batch, H cells, P = proj_size or H, G = blocks * H, R = recurrent blocks * H):
//   xp (T, B, G) with the present blocks in the order i, f, g, o;
//   w_rec (R, P) weight_hh, or (R, H) weight_ch for the full-peephole form (fed c instead of h);
//   cfg: see the Cfg struct below.
// No framework types leak out of the math: the elementwise kernels work on raw pointers.

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

namespace carousel {
namespace {

enum Act : int64_t { SIGMOID = 0, TANH = 1, IDENTITY = 2, RELU = 3, HARD_SIGMOID = 4, SOFTSIGN = 5, ELU = 6, SOFTPLUS = 7 };

template <typename T>
inline T act(int64_t a, T x) {
  switch (a) {
    case SIGMOID: return T(1) / (T(1) + std::exp(-x));
    case TANH: return std::tanh(x);
    case IDENTITY: return x;
    case RELU: return x > T(0) ? x : T(0);
    case HARD_SIGMOID: { T y = (x + T(3)) / T(6); return y < T(0) ? T(0) : (y > T(1) ? T(1) : y); }
    case SOFTSIGN: return x / (T(1) + std::abs(x));
    case ELU: return x > T(0) ? x : std::expm1(x);
    case SOFTPLUS: return x > T(20) ? x : std::log1p(std::exp(x));
    default: return x;
  }
}

// Derivative expressed through the activation's output y = act(x).
template <typename T>
inline T dact(int64_t a, T y) {
  switch (a) {
    case SIGMOID: return y * (T(1) - y);
    case TANH: return T(1) - y * y;
    case IDENTITY: return T(1);
    case RELU: return y > T(0) ? T(1) : T(0);
    case HARD_SIGMOID: return (y > T(0) && y < T(1)) ? T(1) / T(6) : T(0);
    case SOFTSIGN: { T m = T(1) - std::abs(y); return m * m; }
    case ELU: return y > T(0) ? T(1) : y + T(1);
    case SOFTPLUS: return -std::expm1(-y);
    default: return T(1);
  }
}

struct Cfg {
  int64_t H, P;
  int64_t off[4];   // block offsets (in units of H) of i, f, g, o in xp; -1 when absent
  int64_t roff[4];  // block offsets in the recurrent term; -1 when the block receives none
  int64_t G, R;
  bool coupled, peep, ln, proj, fgr, full_peephole;
  int64_t act_g, act_c, act_h;
  double eps;

  explicit Cfg(at::IntArrayRef c) {
    TORCH_CHECK(c.size() == 19, "carousel lstm engine: expected 19 config values, got ", c.size());
    H = c[0]; P = c[1];
    for (int k = 0; k < 4; ++k) { off[k] = c[2 + k]; roff[k] = c[6 + k]; }
    coupled = c[10]; peep = c[11]; ln = c[12]; proj = c[13]; fgr = c[14]; full_peephole = c[15];
    act_g = c[16]; act_c = c[17]; act_h = c[18];
    eps = 1e-5;
    G = 0; R = 0;
    for (int k = 0; k < 4; ++k) { if (off[k] >= 0) G += H; if (roff[k] >= 0) R += H; }
  }
};

inline bool defined(const at::Tensor& t) { return t.defined() && t.numel() > 0; }

template <typename T>
inline const T* ptr_or_null(const at::Tensor& t) { return defined(t) ? t.data_ptr<T>() : nullptr; }

// Row-wise layer normalisation statistics of n values: writes normalised values, returns rstd.
template <typename T>
inline T normalise(const T* x, T* out, int64_t n, double eps) {
  double mean = 0;
  for (int64_t j = 0; j < n; ++j) mean += x[j];
  mean /= n;
  double var = 0;
  for (int64_t j = 0; j < n; ++j) { double d = x[j] - mean; var += d * d; }
  var /= n;
  T rstd = T(1.0 / std::sqrt(var + eps));
  for (int64_t j = 0; j < n; ++j) out[j] = T((x[j] - mean) * rstd);
  return rstd;
}

// Given dn = dL/d(normalised), the normalised values n and rstd: dL/dx into dx.
template <typename T>
inline void normalise_backward(const T* dn, const T* n, T rstd, T* dx, int64_t len) {
  double m1 = 0, m2 = 0;
  for (int64_t j = 0; j < len; ++j) { m1 += dn[j]; m2 += double(dn[j]) * n[j]; }
  m1 /= len; m2 /= len;
  for (int64_t j = 0; j < len; ++j) dx[j] = T(rstd * (dn[j] - m1 - n[j] * m2));
}

// ---------------------------------------------------------------------------------- forward
template <typename T>
std::vector<at::Tensor> forward_impl(
    const Cfg& cfg, const at::Tensor& xp, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& a0,
    const at::Tensor& w_rec, const at::Tensor& w_ci, const at::Tensor& w_cf, const at::Tensor& w_co,
    const at::Tensor& ln_hh_w, const at::Tensor& ln_c_w, const at::Tensor& ln_c_b, const at::Tensor& w_hr,
    const at::Tensor& w_gr, const at::Tensor& lengths, const at::Tensor& drop, const at::Tensor& zmask_h,
    const at::Tensor& zmask_c, const at::Tensor& zmask_a, double zh, double zc, double za) {
  const int64_t Tn = xp.size(0), B = xp.size(1), H = cfg.H, P = cfg.P, G = cfg.G, R = cfg.R;
  const int64_t F = cfg.full_peephole ? H : P;  // width of the fed-back state
  auto opts = xp.options();
  auto y = at::empty({Tn, B, P}, opts);
  auto gates = at::empty({Tn, B, G}, opts);       // activations of the present blocks
  auto cs = at::empty({Tn, B, H}, opts);          // c_t (pre-mask) for every step
  auto sh = at::empty({Tn, B, H}, opts);          // sigma_h(LN(c_t))
  auto fed = at::empty({Tn, B, F}, opts);         // state fed to the recurrent product (after dropout)
  auto hh = cfg.proj ? at::empty({Tn, B, H}, opts) : at::empty({0}, opts);
  auto rhat = cfg.ln ? at::empty({Tn, B, R}, opts) : at::empty({0}, opts);
  auto rrstd = cfg.ln ? at::empty({Tn, B}, opts) : at::empty({0}, opts);
  auto chat = cfg.ln ? at::empty({Tn, B, H}, opts) : at::empty({0}, opts);
  auto crstd = cfg.ln ? at::empty({Tn, B}, opts) : at::empty({0}, opts);
  auto aprev = cfg.fgr ? at::empty({Tn, B, 3 * H}, opts) : at::empty({0}, opts);
  auto cseq = at::empty({Tn, B, H}, opts);
  auto cprev = at::empty({Tn, B, H}, opts);       // c_{t-1} as step t saw it
  auto h = h0.clone(), c = c0.clone();
  auto a = cfg.fgr ? a0.clone() : at::empty({0}, opts);
  auto r = at::empty({B, R}, opts);
  auto gr = cfg.fgr ? at::empty({B, 3 * H}, opts) : at::empty({0}, opts);
  auto hnew_hh = at::empty({B, H}, opts);
  auto hnew = cfg.proj ? at::empty({B, P}, opts) : hnew_hh;
  auto cnew = at::empty({B, H}, opts);
  auto anew = cfg.fgr ? at::empty({B, 3 * H}, opts) : at::empty({0}, opts);
  auto w_rec_t = w_rec.t();
  auto w_hr_t = cfg.proj ? w_hr.t() : at::Tensor();
  auto w_gr_t = cfg.fgr ? w_gr.t() : at::Tensor();

  const T* XP = xp.data_ptr<T>();
  const T* WCI = ptr_or_null<T>(w_ci);
  const T* WCF = ptr_or_null<T>(w_cf);
  const T* WCO = ptr_or_null<T>(w_co);
  const T* LNHW = ptr_or_null<T>(ln_hh_w);
  const T* LNCW = ptr_or_null<T>(ln_c_w);
  const T* LNCB = ptr_or_null<T>(ln_c_b);
  const int64_t* LEN = defined(lengths) ? lengths.data_ptr<int64_t>() : nullptr;
  const T* DROP = ptr_or_null<T>(drop);
  const T* ZH = ptr_or_null<T>(zmask_h);
  const T* ZC = ptr_or_null<T>(zmask_c);
  const T* ZA = ptr_or_null<T>(zmask_a);
  const bool zoneout = ZH || ZC || ZA || zh > 0 || zc > 0 || za > 0;
  const int64_t oi = cfg.off[0], of = cfg.off[1], og = cfg.off[2], oo = cfg.off[3];
  const int64_t ri = cfg.roff[0], rf = cfg.roff[1], rg = cfg.roff[2], ro = cfg.roff[3];
  std::vector<T> rbuf(cfg.ln ? R : 0), cbuf(cfg.ln ? H : 0);

  for (int64_t t = 0; t < Tn; ++t) {
    cprev[t].copy_(c);
    // fed state (dropout mask shared by all steps)
    T* FED = fed[t].data_ptr<T>();
    const T* SRC = cfg.full_peephole ? c.data_ptr<T>() : h.data_ptr<T>();
    for (int64_t k = 0; k < B * F; ++k) FED[k] = DROP ? SRC[k] * DROP[k] : SRC[k];
    at::mm_out(r, fed[t], w_rec_t);
    if (cfg.fgr) {
      aprev[t].copy_(a);
      at::mm_out(gr, a, w_gr_t);
    }
    T* RR = r.data_ptr<T>();
    const T* GR = cfg.fgr ? gr.data_ptr<T>() : nullptr;
    const T* CP = c.data_ptr<T>();
    T* GA = gates[t].data_ptr<T>();
    T* CS = cs[t].data_ptr<T>();
    T* SH = sh[t].data_ptr<T>();
    T* HH = hnew_hh.data_ptr<T>();
    T* AN = cfg.fgr ? anew.data_ptr<T>() : nullptr;
    for (int64_t b = 0; b < B; ++b) {
      T* rb = RR + b * R;
      if (cfg.ln) {
        T* RH = rhat[t].data_ptr<T>() + b * R;
        rrstd[t].data_ptr<T>()[b] = normalise<T>(rb, RH, R, cfg.eps);
        for (int64_t j = 0; j < R; ++j) rb[j] = RH[j] * LNHW[j];
      }
      const T* xb = XP + (t * B + b) * G;
      const T* cp = CP + b * H;
      const T* grb = GR ? GR + b * 3 * H : nullptr;
      T* gb = GA + b * G;
      T* cb = CS + b * H;
      for (int64_t j = 0; j < H; ++j) {
        T i = T(1), f = T(1), g, o = T(1);
        if (oi >= 0) {
          T z = xb[oi * H + j] + (ri >= 0 ? rb[ri * H + j] : T(0));
          if (grb) z += grb[j];
          if (WCI) z += WCI[j] * cp[j];
          i = act<T>(cfg.act_g, z);
          gb[oi * H + j] = i;
        }
        if (of >= 0) {
          T z = xb[of * H + j] + (rf >= 0 ? rb[rf * H + j] : T(0));
          if (grb) z += grb[H + j];
          if (WCF) z += WCF[j] * cp[j];
          f = act<T>(cfg.act_g, z);
          gb[of * H + j] = f;
        } else if (cfg.coupled) {
          f = T(1) - i;
        }
        {
          T z = xb[og * H + j] + (rg >= 0 ? rb[rg * H + j] : T(0));
          g = act<T>(cfg.act_c, z);
          gb[og * H + j] = g;
        }
        T cn = f * cp[j] + i * g;
        cb[j] = cn;
        if (oo >= 0) {
          T z = xb[oo * H + j] + (ro >= 0 ? rb[ro * H + j] : T(0));
          if (grb) z += grb[2 * H + j];
          if (WCO) z += WCO[j] * cn;
          o = act<T>(cfg.act_g, z);
          gb[oo * H + j] = o;
        }
        if (AN) {
          AN[b * 3 * H + j] = i;
          AN[b * 3 * H + H + j] = f;
          AN[b * 3 * H + 2 * H + j] = o;
        }
      }
      const T* cin = cb;
      if (cfg.ln) {
        T* CH = chat[t].data_ptr<T>() + b * H;
        crstd[t].data_ptr<T>()[b] = normalise<T>(cb, CH, H, cfg.eps);
        for (int64_t j = 0; j < H; ++j) cbuf[j] = CH[j] * LNCW[j] + LNCB[j];
        cin = cbuf.data();
      }
      T* sb = SH + b * H;
      T* hb = HH + b * H;
      for (int64_t j = 0; j < H; ++j) {
        T s = act<T>(cfg.act_h, cin[j]);
        sb[j] = s;
        T o = oo >= 0 ? gb[oo * H + j] : T(1);
        hb[j] = o * s;
      }
    }
    if (cfg.proj) {
      hh[t].copy_(hnew_hh);
      at::mm_out(hnew, hnew_hh, w_hr_t);
    }
    // zoneout, padding, outputs
    T* HS = h.data_ptr<T>();
    T* CSt = c.data_ptr<T>();
    T* AS = cfg.fgr ? a.data_ptr<T>() : nullptr;
    const T* HN = hnew.data_ptr<T>();
    const T* CN = CS;
    T* Y = y[t].data_ptr<T>();
    T* CQ = cseq[t].data_ptr<T>();
    for (int64_t b = 0; b < B; ++b) {
      const bool active = !LEN || t < LEN[b];
      if (!active) {
        for (int64_t j = 0; j < P; ++j) Y[b * P + j] = T(0);
        for (int64_t j = 0; j < H; ++j) CQ[b * H + j] = T(0);
        continue;
      }
      for (int64_t j = 0; j < P; ++j) {
        const int64_t k = b * P + j;
        T d = ZH ? ZH[t * B * P + k] : T(zh);
        T v = zoneout ? d * HS[k] + (T(1) - d) * HN[k] : HN[k];
        HS[k] = v;
        Y[k] = v;
      }
      for (int64_t j = 0; j < H; ++j) {
        const int64_t k = b * H + j;
        T d = ZC ? ZC[t * B * H + k] : T(zc);
        T v = zoneout ? d * CSt[k] + (T(1) - d) * CN[k] : CN[k];
        CSt[k] = v;
        CQ[k] = v;
      }
      if (AS) {
        for (int64_t j = 0; j < 3 * H; ++j) {
          const int64_t k = b * 3 * H + j;
          T d = ZA ? ZA[t * B * 3 * H + k] : T(za);
          AS[k] = zoneout ? d * AS[k] + (T(1) - d) * AN[k] : AN[k];
        }
      }
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
    const at::Tensor& zmask_c, const at::Tensor& zmask_a, double zh, double zc, double za,
    const at::Tensor& gates, const at::Tensor& cs, const at::Tensor& sh, const at::Tensor& fed,
    const at::Tensor& hh, const at::Tensor& rhat, const at::Tensor& rrstd, const at::Tensor& chat,
    const at::Tensor& crstd, const at::Tensor& aprev, const at::Tensor& cprev) {
  const int64_t Tn = gates.size(0), B = gates.size(1), H = cfg.H, P = cfg.P, G = cfg.G, R = cfg.R;
  const int64_t F = cfg.full_peephole ? H : P;
  auto opts = gates.options();
  auto gxp = at::empty({Tn, B, G}, opts);
  // Gradient w.r.t. the recurrent product before its layer norm. It is gxp itself when every block
  // receives the plain recurrent term.
  const bool du_is_gxp = !cfg.ln && R == G;
  auto du = du_is_gxp ? gxp : at::empty({Tn, B, R}, opts);
  auto dhp = cfg.proj ? at::empty({Tn, B, P}, opts) : at::empty({0}, opts);
  auto dzifo = cfg.fgr ? at::empty({Tn, B, 3 * H}, opts) : at::empty({0}, opts);
  auto dh = ghT.clone(), dc = gcT.clone();
  auto da = cfg.fgr ? gaT.clone() : at::empty({0}, opts);
  auto dhnew = at::empty({B, P}, opts);
  auto dhh = cfg.proj ? at::empty({B, H}, opts) : dhnew;
  auto dfed = at::empty({B, F}, opts);
  auto daprev = cfg.fgr ? at::empty({B, 3 * H}, opts) : at::empty({0}, opts);
  std::vector<double> gci(H, 0), gcf(H, 0), gco(H, 0);
  std::vector<double> glnh(cfg.ln ? R : 0, 0), glncw(cfg.ln ? H : 0, 0), glncb(cfg.ln ? H : 0, 0);
  const int64_t L = std::max(R, H);
  std::vector<T> dcn(H), dnbuf(L), drbuf(L);
  std::vector<T> dcnew(B * H), danew(cfg.fgr ? B * 3 * H : 0);
  std::vector<char> active(B);

  const T* GY = gy.data_ptr<T>();
  const T* GCQ = ptr_or_null<T>(gcseq);
  const T* WCI = ptr_or_null<T>(w_ci);
  const T* WCF = ptr_or_null<T>(w_cf);
  const T* WCO = ptr_or_null<T>(w_co);
  const T* LNHW = ptr_or_null<T>(ln_hh_w);
  const T* LNCW = ptr_or_null<T>(ln_c_w);
  const int64_t* LEN = defined(lengths) ? lengths.data_ptr<int64_t>() : nullptr;
  const T* DROP = ptr_or_null<T>(drop);
  const T* ZH = ptr_or_null<T>(zmask_h);
  const T* ZC = ptr_or_null<T>(zmask_c);
  const T* ZA = ptr_or_null<T>(zmask_a);
  const bool zoneout = ZH || ZC || ZA || zh > 0 || zc > 0 || za > 0;
  const int64_t oi = cfg.off[0], of = cfg.off[1], og = cfg.off[2], oo = cfg.off[3];
  const int64_t roff[4] = {cfg.roff[0], cfg.roff[1], cfg.roff[2], cfg.roff[3]};
  const int64_t off[4] = {oi, of, og, oo};

  for (int64_t t = Tn - 1; t >= 0; --t) {
    T* DH = dh.data_ptr<T>();
    T* DC = dc.data_ptr<T>();
    T* DA = cfg.fgr ? da.data_ptr<T>() : nullptr;
    T* DHN = dhnew.data_ptr<T>();
    // (a) Split each state's gradient between the step's new value and the previous state
    // (zoneout); padded rows pass all of it to the previous state.
    for (int64_t b = 0; b < B; ++b) {
      active[b] = !LEN || t < LEN[b];
      if (!active[b]) {
        for (int64_t j = 0; j < P; ++j) DHN[b * P + j] = T(0);
        continue;
      }
      for (int64_t j = 0; j < P; ++j) {
        const int64_t k = b * P + j;
        T g = DH[k] + GY[t * B * P + k];
        T d = zoneout ? (ZH ? ZH[t * B * P + k] : T(zh)) : T(0);
        DHN[k] = (T(1) - d) * g;
        DH[k] = d * g;
      }
      for (int64_t j = 0; j < H; ++j) {
        const int64_t k = b * H + j;
        T g = DC[k] + (GCQ ? GCQ[t * B * H + k] : T(0));
        T d = zoneout ? (ZC ? ZC[t * B * H + k] : T(zc)) : T(0);
        dcnew[k] = (T(1) - d) * g;
        DC[k] = d * g;
      }
      if (DA) {
        for (int64_t j = 0; j < 3 * H; ++j) {
          const int64_t k = b * 3 * H + j;
          T g = DA[k];
          T d = zoneout ? (ZA ? ZA[t * B * 3 * H + k] : T(za)) : T(0);
          danew[k] = (T(1) - d) * g;
          DA[k] = d * g;
        }
      }
    }
    // (b) Through the projection.
    if (cfg.proj) {
      dhp[t].copy_(dhnew);
      at::mm_out(dhh, dhnew, w_hr);
    }
    // (c) The cell, elementwise.
    const T* DHH = dhh.data_ptr<T>();
    const T* GA = gates[t].data_ptr<T>();
    const T* CS = cs[t].data_ptr<T>();
    const T* SH = sh[t].data_ptr<T>();
    const T* CP = cprev[t].data_ptr<T>();
    T* GX = gxp[t].data_ptr<T>();
    T* DU = du[t].data_ptr<T>();
    T* DZ3 = cfg.fgr ? dzifo[t].data_ptr<T>() : nullptr;
    for (int64_t b = 0; b < B; ++b) {
      T* gx = GX + b * G;
      if (!active[b]) {
        for (int64_t j = 0; j < G; ++j) gx[j] = T(0);
        if (!du_is_gxp) for (int64_t j = 0; j < R; ++j) DU[b * R + j] = T(0);
        if (DZ3) for (int64_t j = 0; j < 3 * H; ++j) DZ3[b * 3 * H + j] = T(0);
        continue;
      }
      const T* gb = GA + b * G;
      const T* cb = CS + b * H;
      const T* cp = CP + b * H;
      const T* sb = SH + b * H;
      const T* dhb = DHH + b * H;
      const T* dan = DZ3 ? danew.data() + b * 3 * H : nullptr;
      // h = o * sigma_h(LN(c_t))
      for (int64_t j = 0; j < H; ++j) {
        T o = oo >= 0 ? gb[oo * H + j] : T(1);
        dcn[j] = dhb[j] * o * dact<T>(cfg.act_h, sb[j]);
      }
      if (cfg.ln) {
        const T* CH = chat[t].data_ptr<T>() + b * H;
        const T rstd = crstd[t].data_ptr<T>()[b];
        for (int64_t j = 0; j < H; ++j) {
          glncw[j] += double(dcn[j]) * CH[j];
          glncb[j] += dcn[j];
          dnbuf[j] = dcn[j] * LNCW[j];
        }
        normalise_backward<T>(dnbuf.data(), CH, rstd, dcn.data(), H);
      }
      T* dcp = DC + b * H;
      for (int64_t j = 0; j < H; ++j) {
        T dct = dcn[j] + dcnew[b * H + j];
        // output gate; its peephole sees c_t
        T o = T(1), dzo = T(0);
        if (oo >= 0) {
          o = gb[oo * H + j];
          T dout = dhb[j] * sb[j] + (dan ? dan[2 * H + j] : T(0));
          dzo = dout * dact<T>(cfg.act_g, o);
          gx[oo * H + j] = dzo;
          if (WCO) { dct += dzo * WCO[j]; gco[j] += double(dzo) * cb[j]; }
        }
        // c_t = f c_{t-1} + i g
        const T g = gb[og * H + j];
        const T i = oi >= 0 ? gb[oi * H + j] : T(1);
        T f = T(1);
        if (of >= 0) f = gb[of * H + j];
        else if (cfg.coupled) f = T(1) - i;
        T di = dct * g + (dan ? dan[j] : T(0));
        T df = dct * cp[j] + (dan ? dan[H + j] : T(0));
        if (cfg.coupled) di -= df;
        T dzg = dct * i * dact<T>(cfg.act_c, g);
        gx[og * H + j] = dzg;
        T dprev = dct * f;
        T dzi = T(0), dzf = T(0);
        if (oi >= 0) {
          dzi = di * dact<T>(cfg.act_g, i);
          gx[oi * H + j] = dzi;
          if (WCI) { dprev += dzi * WCI[j]; gci[j] += double(dzi) * cp[j]; }
        }
        if (of >= 0) {
          dzf = df * dact<T>(cfg.act_g, f);
          gx[of * H + j] = dzf;
          if (WCF) { dprev += dzf * WCF[j]; gcf[j] += double(dzf) * cp[j]; }
        }
        dcp[j] += dprev;
        if (DZ3) {
          DZ3[b * 3 * H + j] = dzi;
          DZ3[b * 3 * H + H + j] = dzf;
          DZ3[b * 3 * H + 2 * H + j] = dzo;
        }
      }
      // the recurrent term: gather its blocks, then through its layer norm
      if (!du_is_gxp) {
        T* dub = DU + b * R;
        for (int k = 0; k < 4; ++k) {
          if (roff[k] < 0) continue;
          for (int64_t j = 0; j < H; ++j) drbuf[roff[k] * H + j] = gx[off[k] * H + j];
        }
        if (cfg.ln) {
          const T* RH = rhat[t].data_ptr<T>() + b * R;
          const T rstd = rrstd[t].data_ptr<T>()[b];
          for (int64_t j = 0; j < R; ++j) {
            glnh[j] += double(drbuf[j]) * RH[j];
            dnbuf[j] = drbuf[j] * LNHW[j];
          }
          normalise_backward<T>(dnbuf.data(), RH, rstd, dub, R);
        } else {
          for (int64_t j = 0; j < R; ++j) dub[j] = drbuf[j];
        }
      }
    }
    // (d) Into the fed-back state.
    at::mm_out(dfed, du[t], w_rec);
    const T* DF = dfed.data_ptr<T>();
    if (cfg.full_peephole) {
      for (int64_t k = 0; k < B * H; ++k) DC[k] += DF[k];
    } else {
      for (int64_t k = 0; k < B * P; ++k) DH[k] += DROP ? DF[k] * DROP[k] : DF[k];
    }
    // (e) Full gate recurrence.
    if (cfg.fgr) {
      at::mm_out(daprev, dzifo[t], w_gr);
      const T* DP = daprev.data_ptr<T>();
      for (int64_t k = 0; k < B * 3 * H; ++k) DA[k] += DP[k];
    }
  }

  auto gw_rec = at::mm(du.reshape({Tn * B, R}).t(), fed.reshape({Tn * B, F}));
  auto gw_hr = cfg.proj ? at::mm(dhp.reshape({Tn * B, P}).t(), hh.reshape({Tn * B, H})) : at::empty({0}, opts);
  auto gw_gr = cfg.fgr ? at::mm(dzifo.reshape({Tn * B, 3 * H}).t(), aprev.reshape({Tn * B, 3 * H}))
                       : at::empty({0}, opts);
  auto to_tensor = [&](const std::vector<double>& v, bool want) {
    if (!want) return at::empty({0}, opts);
    auto out = at::empty({(int64_t)v.size()}, opts);
    T* o = out.data_ptr<T>();
    for (size_t k = 0; k < v.size(); ++k) o[k] = T(v[k]);
    return out;
  };
  return {gxp, dh, dc, da, gw_rec,
          to_tensor(gci, WCI != nullptr), to_tensor(gcf, WCF != nullptr), to_tensor(gco, WCO != nullptr),
          to_tensor(glnh, cfg.ln), to_tensor(glncw, cfg.ln), to_tensor(glncb, cfg.ln), gw_hr, gw_gr};
}

// ---------------------------------------------------------------------------------- operators
std::vector<at::Tensor> lstm_forward(
    const at::Tensor& xp, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& a0, const at::Tensor& w_rec,
    const at::Tensor& w_ci, const at::Tensor& w_cf, const at::Tensor& w_co, const at::Tensor& ln_hh_w,
    const at::Tensor& ln_c_w, const at::Tensor& ln_c_b, const at::Tensor& w_hr, const at::Tensor& w_gr,
    const at::Tensor& lengths, const at::Tensor& drop, const at::Tensor& zmask_h, const at::Tensor& zmask_c,
    const at::Tensor& zmask_a, double zh, double zc, double za, std::vector<int64_t> config) {
  Cfg cfg(config);
  TORCH_CHECK(xp.device().is_cpu(), "carousel lstm engine: expected CPU tensors, got ", xp.device());
  TORCH_CHECK(xp.dim() == 3 && xp.size(2) == cfg.G, "carousel lstm engine: xp has the wrong shape");
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "carousel_lstm_forward", [&] {
    out = forward_impl<scalar_t>(cfg, xp, h0, c0, a0, w_rec, w_ci, w_cf, w_co, ln_hh_w, ln_c_w, ln_c_b, w_hr, w_gr,
                                 lengths, drop, zmask_h, zmask_c, zmask_a, zh, zc, za);
  });
  return out;
}

std::vector<at::Tensor> lstm_backward(
    const at::Tensor& gy, const at::Tensor& ghT, const at::Tensor& gcT, const at::Tensor& gaT,
    const at::Tensor& gcseq, const at::Tensor& w_rec, const at::Tensor& w_ci, const at::Tensor& w_cf,
    const at::Tensor& w_co, const at::Tensor& ln_hh_w, const at::Tensor& ln_c_w, const at::Tensor& w_hr,
    const at::Tensor& w_gr, const at::Tensor& lengths, const at::Tensor& drop, const at::Tensor& zmask_h,
    const at::Tensor& zmask_c, const at::Tensor& zmask_a, double zh, double zc, double za,
    const at::Tensor& gates, const at::Tensor& cs, const at::Tensor& sh, const at::Tensor& fed,
    const at::Tensor& hh, const at::Tensor& rhat, const at::Tensor& rrstd, const at::Tensor& chat,
    const at::Tensor& crstd, const at::Tensor& aprev, const at::Tensor& cprev, std::vector<int64_t> config) {
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
      "Tensor drop, Tensor zmask_h, Tensor zmask_c, Tensor zmask_a, float zh, float zc, float za, "
      "int[] config) -> Tensor[]",
      &carousel::lstm_forward);
  m.def(
      "lstm_backward(Tensor gy, Tensor ghT, Tensor gcT, Tensor gaT, Tensor gcseq, Tensor w_rec, Tensor w_ci, "
      "Tensor w_cf, Tensor w_co, Tensor ln_hh_w, Tensor ln_c_w, Tensor w_hr, Tensor w_gr, Tensor lengths, "
      "Tensor drop, Tensor zmask_h, Tensor zmask_c, Tensor zmask_a, float zh, float zc, float za, "
      "Tensor gates, Tensor cs, Tensor sh, Tensor fed, Tensor hh, Tensor rhat, Tensor rrstd, Tensor chat, "
      "Tensor crstd, Tensor aprev, Tensor cprev, int[] config) -> Tensor[]",
      &carousel::lstm_backward);
}
