import './index.css';
import './history.css';
