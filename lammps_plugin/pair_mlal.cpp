/* ----------------------------------------------------------------------
   mlal: pair_style mlal (examples/lammps/README.md).

     pair_style mlal [nthreads N] [uncertainty yes|no|always]
     pair_coeff * * model.pt El1 El2 ...      (one element per atom type)

   nthreads: torch threads per MPI rank (default 1). uncertainty yes (default):
   gamma/sigma are computed only on steps where compute mlal/atom or fix
   mlal/extrapolation asks for them; no: never (compute/fix refuse to run);
   always: on every force evaluation. Several types may map to one element.

   The model (docs/model_format.md) sees every local atom as a centre and
   every neighbour within the model cutoff, ghosts included, as an edge
   (i, j) with r_ij = x_j - x_i. From dE/dr_ij = g:
       f_i += g, f_j -= g (j may be a ghost), virial -= r (x) g.
   Ghost forces go back to their owners by LAMMPS' reverse communication
   (newton_pair on) or by our own reverse_comm (newton_pair off).
------------------------------------------------------------------------- */

#include "pair_mlal.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mpi.h>
#include <stdexcept>

using namespace LAMMPS_NS;

PairMLAL::PairMLAL(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 1;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  model_loaded = false;
  map = nullptr;
  cut = cutsq_model = 0.0;
  nthreads = 1;
  unc_mode = UNC_YES;
  unc_step = force_step = -1;
  gmax_all = smax_all = esigma_all = 0.0;
  comm_mode = COMM_F;
  comm_reverse = comm_reverse_off = 9;
}

PairMLAL::~PairMLAL()
{
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    delete[] map;
  }
}

void PairMLAL::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  map = new int[n];
  for (int i = 0; i < n; i++) {
    map[i] = -1;
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
  }
  type_element.assign(n, "NULL");
}

/* pair_style mlal [nthreads N] [uncertainty yes|no|always] */

void PairMLAL::settings(int narg, char **arg)
{
  nthreads = 1;
  unc_mode = UNC_YES;
  for (int iarg = 0; iarg < narg; iarg += 2) {
    std::string key = arg[iarg];
    if (key != "nthreads" && key != "uncertainty")
      error->all(FLERR, "Unknown pair_style mlal keyword '{}'; expected nthreads or uncertainty", key);
    if (iarg + 1 >= narg) error->all(FLERR, "pair_style mlal keyword '{}' needs a value", key);
    std::string val = arg[iarg + 1];
    if (key == "nthreads") {
      nthreads = utils::inumeric(FLERR, val, false, lmp);
      if (nthreads < 1) error->all(FLERR, "pair_style mlal nthreads must be >= 1");
    } else if (val == "yes") {
      unc_mode = UNC_YES;
    } else if (val == "no") {
      unc_mode = UNC_NO;
    } else if (val == "always") {
      unc_mode = UNC_ALWAYS;
    } else {
      error->all(FLERR, "pair_style mlal uncertainty must be yes, no or always, not '{}'", val);
    }
  }
  mlal::MlalModel::set_num_threads(nthreads);
}

/* pair_coeff * * model.pt El1 El2 ... (one per atom type; NULL only under hybrid) */

void PairMLAL::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  int ntypes = atom->ntypes;
  if (narg < 3 || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "Usage: pair_coeff * * model.pt El1 ... El{} (one element per atom type)", ntypes);
  if (narg != 3 + ntypes)
    error->all(FLERR, "pair_coeff * * {} needs {} element names (one per atom type), got {}", arg[2],
               ntypes, narg - 3);
  std::vector<std::string> elements(ntypes + 1, "NULL");
  for (int t = 1; t <= ntypes; t++) {
    elements[t] = arg[2 + t];
    if (elements[t] == "NULL" && force->pair == this)
      error->all(FLERR,
                 "pair_coeff: atom type {} is left unmapped (NULL); pair_style mlal needs an "
                 "element for every type unless it is a pair_style hybrid sub-style",
                 t);
  }
  load_model(arg[2], elements);
}

void PairMLAL::load_model(const std::string &path, const std::vector<std::string> &elements)
{
  try {
    mdl.load(path);
  } catch (const std::exception &e) {
    error->all(FLERR, "pair_style mlal: {}", e.what());
  }
  model_loaded = true;
  restart_missing.clear();
  const auto &species = mdl.species();
  std::string known;
  for (const auto &s : species) known += (known.empty() ? "" : ", ") + s;
  int ntypes = atom->ntypes;
  for (int t = 1; t <= ntypes; t++) {
    type_element[t] = elements[t];
    map[t] = -1;
    if (elements[t] == "NULL") continue;
    auto it = std::find(species.begin(), species.end(), elements[t]);
    if (it == species.end())
      error->all(FLERR, "pair_coeff: element {} (atom type {}) is not in model {}; the model knows {}",
                 elements[t], t, path, known);
    map[t] = (int) (it - species.begin());
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = 1; j <= ntypes; j++) setflag[i][j] = (map[i] >= 0 && map[j] >= 0) ? 1 : 0;
  cut = mdl.cutoff();
  cutsq_model = cut * cut;
  int K = mdl.n_members();
  comm_reverse = comm_reverse_off = std::max(9, 3 * K);
  unc_step = -1;
  if (comm->me == 0)
    utils::logmesg(lmp, "pair_style mlal: loaded {} (species {}; cutoff {} A; {} members; {})\n",
                   path, known, cut, K, mdl.float64() ? "float64" : "float32");
}

void PairMLAL::init_style()
{
  if (!model_loaded && !restart_missing.empty())
    error->all(FLERR, "pair_style mlal: the model file {} named in the restart file is missing; "
               "give pair_coeff * * model.pt El ... after read_restart", restart_missing);
  if (!model_loaded) error->all(FLERR, "pair_style mlal: no model loaded; use pair_coeff * * model.pt ...");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style mlal requires 'units metal' (eV, Angstrom), not '{}'",
               update->unit_style);
  neighbor->add_request(this, NeighConst::REQ_FULL);
  requesters.clear();    // computes and fixes register again in their init()
  mlal::MlalModel::set_num_threads(nthreads);
}

double PairMLAL::init_one(int, int)
{
  return cut;
}

void PairMLAL::setup()
{
  double cutghost = comm->get_comm_cutoff();
  if (cutghost < cut)
    error->all(FLERR, "pair_style mlal: model cutoff {} A exceeds the ghost-atom cutoff {} A; "
               "increase it with comm_modify cutoff", cut, cutghost);
}

void PairMLAL::add_requester(Requester *r)
{
  if (std::find(requesters.begin(), requesters.end(), r) == requesters.end()) requesters.push_back(r);
}

void PairMLAL::remove_requester(Requester *r)
{
  requesters.erase(std::remove(requesters.begin(), requesters.end(), r), requesters.end());
}

bool PairMLAL::uncertainty_wanted(bigint ntimestep)
{
  if (unc_mode == UNC_NO) return false;
  if (unc_mode == UNC_ALWAYS) return true;
  bool want = false;
  // ask every requester: a compute's matchstep() also prunes its step list
  for (auto r : requesters) want = r->wants_uncertainty(ntimestep) || want;
  return want;
}

/* edges (i, j) for local centre i and any neighbour j within the model cutoff */

void PairMLAL::build_edges()
{
  double **x = atom->x;
  int *type = atom->type;
  int nall = atom->nlocal + atom->nghost;
  species_buf.resize(nall);
  for (int a = 0; a < nall; a++) species_buf[a] = std::max(map[type[a]], 0);
  edge_i.clear();
  edge_j.clear();
  edge_vec.clear();
  for (int ii = 0; ii < list->inum; ii++) {
    int i = list->ilist[ii];
    if (map[type[i]] < 0) continue;
    const int *jlist = list->firstneigh[i];
    int jnum = list->numneigh[i];
    for (int jj = 0; jj < jnum; jj++) {
      int j = jlist[jj] & NEIGHMASK;
      if (map[type[j]] < 0) continue;
      double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz >= cutsq_model) continue;
      edge_i.push_back(i);
      edge_j.push_back(j);
      edge_vec.push_back(dx);
      edge_vec.push_back(dy);
      edge_vec.push_back(dz);
    }
  }
  size_t E = edge_i.size();
  edge_index.resize(2 * E);
  for (size_t e = 0; e < E; e++) {
    edge_index[e] = edge_i[e];
    edge_index[E + e] = edge_j[e];
  }
}

void PairMLAL::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  int nlocal = atom->nlocal;
  int nall = nlocal + atom->nghost;
  double **f = atom->f;
  int *type = atom->type;
  bool newton = force->newton_pair;
  bool unc = uncertainty_wanted(update->ntimestep);

  // with newton_pair off LAMMPS neither clears nor communicates ghost forces: we do
  if (!newton) {
    for (int a = nlocal; a < nall; a++) f[a][0] = f[a][1] = f[a][2] = 0.0;
    if (vflag_atom)
      for (int a = nlocal; a < nall; a++)
        for (int c = 0; c < 6; c++) vatom[a][c] = 0.0;
  }

  build_edges();
  int64_t E = (int64_t) edge_i.size();
  // a rank may own no atoms (clusters in vacuum): nothing to evaluate, but it still
  // takes part in the communication below
  if (nlocal > 0) try {
      mdl.evaluate(species_buf.data(), nall, edge_index.data(), edge_vec.data(), E, nlocal, unc);
    } catch (const std::exception &e) {
      error->one(FLERR, "pair_style mlal: {}", e.what());
    }

  const double *ae = nlocal > 0 ? mdl.atom_energy() : nullptr;
  if (eflag_either)
    for (int i = 0; i < nlocal; i++) {
      if (map[type[i]] < 0) continue;
      if (eflag_global) eng_vdwl += ae[i];
      if (eflag_atom) eatom[i] += ae[i];
    }

  const double *g = nlocal > 0 ? mdl.edge_grad() : nullptr;
  for (int64_t e = 0; e < E; e++) {
    int i = edge_i[e], j = edge_j[e];
    const double *ge = g + 3 * e;
    f[i][0] += ge[0];
    f[i][1] += ge[1];
    f[i][2] += ge[2];
    f[j][0] -= ge[0];
    f[j][1] -= ge[1];
    f[j][2] -= ge[2];
    if (vflag_either) {
      const double *r = &edge_vec[3 * e];
      double v[6] = {-r[0] * ge[0], -r[1] * ge[1], -r[2] * ge[2],
                     -0.5 * (r[0] * ge[1] + r[1] * ge[0]), -0.5 * (r[0] * ge[2] + r[2] * ge[0]),
                     -0.5 * (r[1] * ge[2] + r[2] * ge[1])};
      if (vflag_global)
        for (int c = 0; c < 6; c++) virial[c] += v[c];
      if (vflag_atom)
        for (int c = 0; c < 6; c++) {
          vatom[i][c] += 0.5 * v[c];
          vatom[j][c] += 0.5 * v[c];
        }
    }
  }

  if (!newton) {
    comm_mode = vflag_atom ? COMM_FV : COMM_F;
    comm->reverse_comm(this, vflag_atom ? 9 : 3);
  }
  if (unc) compute_uncertainty(nlocal, nall);
  force_step = update->ntimestep;
  force_nlocal = nlocal;
  snapshot(force_x);
}

/* local positions and box, to tell whether atoms moved since the last force call */

void PairMLAL::snapshot(std::vector<double> &buf)
{
  int nlocal = atom->nlocal;
  buf.resize(3 * (size_t) nlocal + 9);
  if (nlocal) memcpy(buf.data(), atom->x[0], 3 * sizeof(double) * nlocal);
  double *b = &buf[3 * (size_t) nlocal];
  for (int c = 0; c < 3; c++) b[c] = domain->boxlo[c];
  for (int c = 0; c < 6; c++) b[3 + c] = domain->h[c];
}

void PairMLAL::ensure_uncertainty(const char *who)
{
  bigint step = update->ntimestep;
  int nlocal = atom->nlocal;
  // every decision below is taken collectively: the caller is collective
  int mine[2], all[2];
  mine[0] = (unc_step == step && uncertainty_nlocal() == nlocal) ? 1 : 0;    // have this step's
  mine[1] = (force_step == step && force_nlocal == nlocal && list) ? 1 : 0;   // atoms unmoved
  if (mine[1]) {
    std::vector<double> now;
    snapshot(now);
    mine[1] = now == force_x ? 1 : 0;
  }
  MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MIN, world);
  // within a run, values from this step's force call are the step's values even if a
  // fix (deform, recenter...) moved atoms afterwards, as for the potential energy
  if (all[0] && (all[1] || update->whichflag != 0)) return;
  if (!all[1])
    error->all(FLERR, "{}: gamma/sigma are not available on step {}: no force evaluation on this "
               "step or atoms moved since (last step with uncertainty: {}); issue 'run 0' first",
               who, step, unc_step);
  build_edges();
  if (nlocal > 0) try {
      mdl.evaluate(species_buf.data(), nlocal + atom->nghost, edge_index.data(), edge_vec.data(),
                   (int64_t) edge_i.size(), nlocal, true);
    } catch (const std::exception &e) {
      error->one(FLERR, "pair_style mlal: {}", e.what());
    }
  compute_uncertainty(nlocal, nlocal + atom->nghost);
}

/* per-member forces -> sigma_i; member energies -> energy sigma; gamma copied */

void PairMLAL::compute_uncertainty(int nlocal, int nall)
{
  int K = mdl.n_members();
  int64_t E = (int64_t) edge_i.size();
  int *type = atom->type;
  fmember.assign((size_t) nall * 3 * K, 0.0);
  const double *mg = nlocal > 0 ? mdl.member_edge_grad() : nullptr;
  for (int k = 0; k < K; k++) {
    const double *gk = mg + (size_t) k * E * 3;
    for (int64_t e = 0; e < E; e++) {
      double *fi = &fmember[((size_t) edge_i[e] * K + k) * 3];
      double *fj = &fmember[((size_t) edge_j[e] * K + k) * 3];
      for (int c = 0; c < 3; c++) {
        fi[c] += gk[3 * e + c];
        fj[c] -= gk[3 * e + c];
      }
    }
  }
  comm_mode = COMM_MEMBERS;
  comm->reverse_comm(this, 3 * K);

  gamma_atom.assign(nlocal, 0.0);
  sigma_atom.assign(nlocal, 0.0);
  esigma_atom.assign(nlocal, 0.0);
  const double *gam = nlocal > 0 ? mdl.gamma() : nullptr;
  const double *mae = nlocal > 0 ? mdl.member_atom_energy() : nullptr;
  std::vector<double> etot(K, 0.0);
  double gmax = 0.0, smax = 0.0;
  for (int i = 0; i < nlocal; i++) {
    if (map[type[i]] < 0) continue;
    const double *fi = &fmember[(size_t) i * K * 3];
    double mean[3] = {0.0, 0.0, 0.0};
    for (int k = 0; k < K; k++)
      for (int c = 0; c < 3; c++) mean[c] += fi[3 * k + c] / K;
    double var = 0.0;
    for (int k = 0; k < K; k++)
      for (int c = 0; c < 3; c++) var += (fi[3 * k + c] - mean[c]) * (fi[3 * k + c] - mean[c]);
    sigma_atom[i] = std::sqrt(var / K);
    double emean = 0.0, evar = 0.0;
    for (int k = 0; k < K; k++) emean += mae[(size_t) k * nlocal + i] / K;
    for (int k = 0; k < K; k++) {
      double d = mae[(size_t) k * nlocal + i] - emean;
      evar += d * d;
      etot[k] += mae[(size_t) k * nlocal + i];
    }
    esigma_atom[i] = std::sqrt(evar / K);
    gamma_atom[i] = gam[i];
    gmax = std::max(gmax, gam[i]);
    smax = std::max(smax, sigma_atom[i]);
  }
  double local_max[2] = {gmax, smax}, global_max[2];
  MPI_Allreduce(local_max, global_max, 2, MPI_DOUBLE, MPI_MAX, world);
  gmax_all = global_max[0];
  smax_all = global_max[1];
  std::vector<double> etot_all(K);
  MPI_Allreduce(etot.data(), etot_all.data(), K, MPI_DOUBLE, MPI_SUM, world);
  double emean = 0.0, evar = 0.0;
  for (int k = 0; k < K; k++) emean += etot_all[k] / K;
  for (int k = 0; k < K; k++) evar += (etot_all[k] - emean) * (etot_all[k] - emean);
  esigma_all = std::sqrt(evar / K);
  unc_step = update->ntimestep;
  unc_count++;
}

/* reverse communication: ghost forces (newton off), ghost per-atom virial, member forces */

int PairMLAL::pack_reverse_comm(int n, int first, double *buf)
{
  int m = 0, last = first + n;
  if (comm_mode == COMM_MEMBERS) {
    int w = 3 * mdl.n_members();
    for (int i = first; i < last; i++)
      for (int c = 0; c < w; c++) buf[m++] = fmember[(size_t) i * w + c];
    return m;
  }
  double **f = atom->f;
  for (int i = first; i < last; i++) {
    buf[m++] = f[i][0];
    buf[m++] = f[i][1];
    buf[m++] = f[i][2];
    if (comm_mode == COMM_FV)
      for (int c = 0; c < 6; c++) buf[m++] = vatom[i][c];
  }
  return m;
}

void PairMLAL::unpack_reverse_comm(int n, int *list, double *buf)
{
  int m = 0;
  if (comm_mode == COMM_MEMBERS) {
    int w = 3 * mdl.n_members();
    for (int ii = 0; ii < n; ii++) {
      double *fi = &fmember[(size_t) list[ii] * w];
      for (int c = 0; c < w; c++) fi[c] += buf[m++];
    }
    return;
  }
  double **f = atom->f;
  for (int ii = 0; ii < n; ii++) {
    int j = list[ii];
    f[j][0] += buf[m++];
    f[j][1] += buf[m++];
    f[j][2] += buf[m++];
    if (comm_mode == COMM_FV)
      for (int c = 0; c < 6; c++) vatom[j][c] += buf[m++];
  }
}

/* restart: settings, model path and element map; the model is re-read from its path */

void PairMLAL::write_restart_settings(FILE *fp)
{
  fwrite(&nthreads, sizeof(int), 1, fp);
  fwrite(&unc_mode, sizeof(int), 1, fp);
}

void PairMLAL::read_restart_settings(FILE *fp)
{
  if (comm->me == 0) {
    utils::sfread(FLERR, &nthreads, sizeof(int), 1, fp, nullptr, error);
    utils::sfread(FLERR, &unc_mode, sizeof(int), 1, fp, nullptr, error);
  }
  MPI_Bcast(&nthreads, 1, MPI_INT, 0, world);
  MPI_Bcast(&unc_mode, 1, MPI_INT, 0, world);
}

static void write_string(FILE *fp, const std::string &s)
{
  int n = (int) s.size();
  fwrite(&n, sizeof(int), 1, fp);
  fwrite(s.data(), 1, n, fp);
}

static std::string read_string(LAMMPS *lmp, FILE *fp, MPI_Comm world, int me)
{
  int n = 0;
  if (me == 0) utils::sfread(FLERR, &n, sizeof(int), 1, fp, nullptr, lmp->error);
  MPI_Bcast(&n, 1, MPI_INT, 0, world);
  std::string s(n, '\0');
  if (me == 0 && n > 0) utils::sfread(FLERR, &s[0], 1, n, fp, nullptr, lmp->error);
  if (n > 0) MPI_Bcast(&s[0], n, MPI_CHAR, 0, world);
  return s;
}

void PairMLAL::write_restart(FILE *fp)
{
  write_restart_settings(fp);
  // absolute path: the restart may be read from another working directory
  std::string path;
  if (model_loaded) {
    std::error_code ec;
    auto abs = std::filesystem::absolute(mdl.path(), ec);
    path = ec ? mdl.path() : abs.string();
  }
  write_string(fp, path);
  for (int t = 1; t <= atom->ntypes; t++) write_string(fp, type_element[t]);
}

void PairMLAL::read_restart(FILE *fp)
{
  read_restart_settings(fp);
  allocate();
  std::string path = read_string(lmp, fp, world, comm->me);
  std::vector<std::string> elements(atom->ntypes + 1, "NULL");
  for (int t = 1; t <= atom->ntypes; t++) elements[t] = read_string(lmp, fp, world, comm->me);
  mlal::MlalModel::set_num_threads(nthreads);
  int exists = 0;
  if (comm->me == 0 && !path.empty()) {
    FILE *mf = fopen(path.c_str(), "rb");
    if (mf) {
      exists = 1;
      fclose(mf);
    }
  }
  MPI_Bcast(&exists, 1, MPI_INT, 0, world);
  if (exists) {
    load_model(path, elements);
  } else {
    // keep the element map so init reaches init_style() and its clear message
    restart_missing = path.empty() ? std::string("(none)") : path;
    for (int t = 1; t <= atom->ntypes; t++) type_element[t] = elements[t];
    for (int i = 1; i <= atom->ntypes; i++)
      for (int j = 1; j <= atom->ntypes; j++)
        setflag[i][j] = (elements[i] != "NULL" && elements[j] != "NULL") ? 1 : 0;
    if (comm->me == 0)
      error->warning(FLERR, "pair_style mlal: model file '{}' named in the restart file is not "
                     "there; give pair_coeff * * model.pt ... before the next run", path);
  }
}

double PairMLAL::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += (double) species_buf.capacity() * sizeof(int64_t) + edge_index.capacity() * sizeof(int64_t);
  bytes += (double) (edge_vec.capacity() + fmember.capacity()) * sizeof(double);
  bytes += (double) (edge_i.capacity() + edge_j.capacity()) * sizeof(int);
  bytes += (double) (gamma_atom.capacity() + sigma_atom.capacity() + esigma_atom.capacity()) * sizeof(double);
  return bytes;
}
