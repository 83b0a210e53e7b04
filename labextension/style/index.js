import './index.css';
import './history.css';
import './chips.css';
